"""The verbs that run cells: `sweep` (plan, run every pending cell, collect), `run` (one cell
in this process) and `cell` (a job's one cell of a manifest). Domain modules are imported
inside each verb: `cell` is what every job starts, and loads no more than it needs."""

from __future__ import annotations

import argparse
import json

from bench.cli.exit_codes import EXIT_CELL_FAILED, EXIT_OK
from bench.cli.printing import held_traceback, printable_row, stdout_to_stderr
from bench.config.checks import UsageError
from bench.row.status import Status

FAILED_SHOWN = 10  # cell ids named in the line about this run's failures


def sweep(args: argparse.Namespace) -> int:
    from bench.executors import check_executor
    from bench.plan.grid import plan_from_overrides
    from bench.results.collect import summary_text
    from bench.store import SweepPaths, open_store
    from bench.sweep import run_sweep

    plan = plan_from_overrides(args.overrides, check_executor=check_executor)
    open_store(plan.store_root).check()  # a bad root fails here, before anything is written
    collected = run_sweep(plan)
    if collected is None:  # submitted to a scheduler; not waiting
        return EXIT_OK
    print(summary_text(collected))
    aggregated = open_store(plan.store_root).uri(SweepPaths(plan.sweep_id).aggregated)
    print(f"aggregated: {aggregated}")
    if failed_now := collected.failed_now:
        print(
            f"{len(failed_now)} cells failed or timed out in this run (an earlier ok "
            f"row stands for any that had one): {', '.join(failed_now[:FAILED_SHOWN])}"
            + (" ..." if len(failed_now) > FAILED_SHOWN else "")
        )
    failed = collected.failed or collected.missing or failed_now
    return EXIT_CELL_FAILED if failed else EXIT_OK


def run(args: argparse.Namespace) -> int:
    from bench.cell.rank_group import run_as_rank_group
    from bench.cell.runner import run_cell
    from bench.engines.process_groups import terminate_as_exit
    from bench.executors import check_executor
    from bench.measure import progress
    from bench.plan.feasibility import planner_warnings
    from bench.plan.grid import compose_base, plan_from_overrides
    from bench.results.run_summary import run_summary

    cfg = compose_base(args.overrides)
    plan = plan_from_overrides(args.overrides, base=cfg, check_executor=check_executor)
    if len(plan.cells) != 1:
        raise UsageError(f"run takes one cell; these overrides give {len(plan.cells)}: use sweep")
    if (code := run_as_rank_group(plan.cells[0], args.argv)) is not None:
        return code
    progress.begin(progress.CellProgress(None, plan.sweep_id, plan.cells[0].cell_id, ""))
    # stdout carries only the summary or the row (`bench run ... format=json | jq`): what
    # libraries print while the cell runs (DeepSpeed logs to stdout on import) goes to
    # stderr; SIGTERM ends the cell as an exception would, so a server it started is stopped
    with stdout_to_stderr(), terminate_as_exit(), held_traceback(args.traceback) as held:
        result = run_cell(plan.cells[0], planner_warnings)  # the phases print as they happen
    row = result.row
    if cfg.format == "json":
        print(printable_row(row))
    else:
        hint = " (traceback=true prints its traceback)" if held else ""
        print(run_summary(row) + hint)
    return EXIT_OK if row["status"] == Status.OK else EXIT_CELL_FAILED


def cell(args: argparse.Namespace) -> int:
    from bench.cell.rank_group import run_as_rank_group
    from bench.executors import executor_class, lease
    from bench.executors.environment import index_from_environment
    from bench.executors.job import job_cell, run_job
    from bench.plan.manifest import check_manifest_store

    index = args.index if args.index is not None else index_from_environment()
    check_manifest_store(args.manifest)  # unreachable or missing: one line, not 80 s of retries
    store, plan, its_cell = job_cell(args.manifest, index, args.array)  # read once
    if (code := run_as_rank_group(its_cell, args.argv)) is not None:
        return code
    limit_s = executor_class(plan.executor)(plan.executor).attempt_limit_s
    outcome = run_job(store, plan, its_cell, lease.lease_seconds(limit_s))
    if outcome.result is None:  # stood down: nothing wrong, nothing written
        print(json.dumps({"cell_id": outcome.cell_id, "stood_down": outcome.stood_down}))
        return EXIT_OK
    row = outcome.result.row
    print(json.dumps({k: row.get(k) for k in ("cell_id", "status", "error", "attempt_id")}))
    return EXIT_OK if row["status"] == Status.OK else EXIT_CELL_FAILED
