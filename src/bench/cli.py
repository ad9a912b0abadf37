"""Command line: `python -m bench VERB [options] [hydra overrides]`. Verbs only; the work is
in the modules they call.

Exit codes: 0 all good; 1 some cell failed or timed out (its row says why); 2 bad input or an
unusable store (one line naming the key, the value and what is allowed; nothing written); 130
interrupted (Ctrl-C: the running cell's process is ended, and the same command resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bench.config.checks import ConfigError, UsageError
from bench.config.schema import add_config_dir
from bench.row.status import Status
from bench.store import StoreError

if TYPE_CHECKING:
    from bench.config.schema import CellConfig
    from bench.store import Store, SweepPaths

EXIT_OK, EXIT_CELL_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
VERBS_WITH_OVERRIDES = (
    "sweep", "run", "plan", "fit", "report", "status", "collect", "ls", "compare", "capacity"
)  # fmt: skip

VERBS_HELP = {
    "sweep": "expand +grid=NAME into cells, run them (local: a subprocess each), collect",
    "run": "run one cell in this process and print its summary (format=json: the whole row; "
    "traceback=true: a failure's traceback on stderr)",
    "cell": "job entry point: run cell --index N (or the scheduler's index) of --manifest URI",
    "collect": "aggregate a sweep's cell rows into aggregated.parquet and print a table",
    "status": "a sweep's jobs as the scheduler sees them, and its rows so far",
    "plan": "the cells of +grid=NAME: memory fit, engine support, the sweep's own cost "
    "(the summary; cells=true adds the table of cells, format=json everything)",
    "fit": "instance types and partition degrees that can host model=NAME, cheapest first",
    "report": "plots, the cheapest configuration meeting sla.p99_ms, Pareto front (HTML + MD); "
    "compare=BASE adds the comparison with a base sweep, rate=R a fleet sized for R/s, "
    "ratio=A/B the table of instance type A over B (by itself for a sweep of two; ratio=off)",
    "prices": "prices refresh: rewrite the instance catalog from the AWS Price List API",
    "ls": "the sweeps in the store, newest first: grid, date, executor, cells, rows by status",
    "capacity": "capacity SWEEP rate=R sla.p99_ms=X: replicas, instances and $/month per cell "
    "to serve R inferences/s under the SLA (M/G/c over its measured latencies)",
    "compare": "compare BASE NEW: per configuration, faster / slower / no significant change "
    "(confidence intervals from the raw samples); exit 1 on a regression beyond threshold=",
}


# Each verb's own examples (its --help epilog).
VERB_EXAMPLES = {
    "sweep": [
        "python -m bench sweep +grid=smoke",
        "python -m bench sweep +grid=smoke 'grid.axes.batch_size=[1,8]' repeats=3",
        "python -m bench sweep +grid=bert_g5 executor=aws_batch executor.image=URI "
        "store.root=s3://BUCKET/bench",
    ],
    "run": [
        "python -m bench run model=opt_tiny batch_size=4",
        "python -m bench run engine=sleep engine.service_ms=5 threads=4",
    ],
    "plan": [
        "python -m bench plan +grid=smoke",
        "python -m bench plan +grid=bert_g5 executor=aws_batch pricing=sagemaker",
    ],
    "fit": [
        "python -m bench fit model=gpt_neox_20b precision=fp16",
        "python -m bench fit params=15e9 precision=fp16",
    ],
    "ls": ["python -m bench ls", "python -m bench ls store.root=s3://BUCKET/bench"],
    "report": [
        "python -m bench report SWEEP_ID sla.p99_ms=50",
        "python -m bench report SWEEP_ID sla.p99_ms=50 compare=BASE_ID rate=200",
    ],
    "compare": ["python -m bench compare BASE_ID NEW_ID threshold=0.05"],
    "capacity": ["python -m bench capacity SWEEP_ID rate=200 sla.p99_ms=50"],
    "status": ["python -m bench status SWEEP_ID", "python -m bench status SWEEP_ID wait=true"],
    "collect": ["python -m bench collect SWEEP_ID", "python -m bench collect SWEEP_ID format=csv"],
    "cell": ["python -m bench cell --manifest results/SWEEP_ID/manifest.json --index 0"],
    "prices": ["python -m bench prices refresh --out catalog.yaml"],
}
KEYS_DOCUMENTED = (
    "Every key, with its default: conf/config.yaml (and conf/<group>/*.yaml); how to write a "
    "grid: docs/config.md; every verb: docs/commands.md."
)


def _epilog(verb: str) -> str:
    examples = "\n".join(f"  {line}" for line in VERB_EXAMPLES.get(verb, []))
    return f"examples:\n{examples}\n\n{KEYS_DOCUMENTED}"


def _shipped() -> str:
    """The grids and models that come with bench (and a --config-dir's), for --help."""
    from bench.config.schema import group_options

    return (
        f"grids (+grid=NAME): {', '.join(group_options('grid'))}\n"
        f"models (model=NAME): {', '.join(group_options('model'))}"
    )


def _verb(verbs: Any, verb: str) -> argparse.ArgumentParser:
    return verbs.add_parser(
        verb,
        help=VERBS_HELP[verb],
        description=VERBS_HELP[verb],
        epilog=_epilog(verb),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure model inference across a grid of engines, precisions, batch sizes "
        "and instance types. Options after the verb are Hydra overrides (key=value, +grid=NAME).",
        epilog=f"{_shipped()}\n\n{KEYS_DOCUMENTED}\nAnywhere on the line: --config-dir DIR adds "
        "DIR's model/, grid/, engine/, scenario/ ... files to the package's (repeatable); "
        "--cfg job (sweep, run, plan) prints the composed config of the first cell and runs "
        "nothing.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    # default=[]: argparse counts a bare nargs="*" positional as required in its error line
    for verb in ("sweep", "run", "plan", "fit", "ls"):
        sub = _verb(verbs, verb)
        sub.add_argument("overrides", nargs="*", default=[], help="Hydra overrides (key=value)")
    cell = _verb(verbs, "cell")
    cell.add_argument("--manifest", required=True, help="URI of <root>/<sweep_id>/manifest.json")
    cell.add_argument("--index", type=int, default=None, help="cell index (default: from env)")
    cell.add_argument(
        "--array", default=None, help="array map name: --index / the env index is its child"
    )
    report = _verb(verbs, "report")
    report.add_argument("sweep_id", help="the sweep's folder name in the store")
    report.add_argument(
        "overrides", nargs="*", default=[], help="e.g. sla.p99_ms=50 store.root=DIR"
    )
    prices = _verb(verbs, "prices")
    prices.add_argument("action", choices=["refresh"])
    prices.add_argument("--region", default="us-east-1", help="region whose prices to read")
    prices.add_argument("--spot", action="store_true", help="also read current Spot prices")
    prices.add_argument("--out", default=None, help="catalog file to write (required)")
    comp = _verb(verbs, "compare")
    comp.add_argument("base", help="sweep id in the store, or URI of an aggregated.parquet")
    comp.add_argument("new", help="sweep id in the store, or URI of an aggregated.parquet")
    comp.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="threshold=0.05 noise=0.01 format=json store.root=DIR",
    )
    cap = _verb(verbs, "capacity")
    cap.add_argument("sweep_id", help="the sweep's folder name in the store")
    cap.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="rate=R sla.p99_ms=X [peak_to_mean=K] [format=json] [store.root=DIR]",
    )
    status = _verb(verbs, "status")
    status.add_argument("sweep_id", help="the sweep's folder name in the store")
    status.add_argument(
        "overrides", nargs="*", default=[], help="Hydra overrides, e.g. store.root=s3://b/p"
    )
    coll = _verb(verbs, "collect")
    coll.add_argument("sweep_id", help="the sweep's folder name in the store")
    coll.add_argument("--strict", action="store_true", help="an unreadable cell file is fatal")
    coll.add_argument(
        "overrides", nargs="*", default=[], help="Hydra overrides, e.g. store.root=DIR"
    )
    return parser


def _sweep(args: argparse.Namespace) -> int:
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
    if collected.failed_now:
        print(
            f"{len(collected.failed_now)} cells failed or timed out in this run (an earlier ok "
            f"row stands for any that had one): {', '.join(collected.failed_now[:10])}"
            + (" ..." if len(collected.failed_now) > 10 else "")
        )
    failed = collected.failed or collected.missing or collected.failed_now
    return EXIT_CELL_FAILED if failed else EXIT_OK


def _printable(row: dict[str, Any]) -> str:
    shown = {k: v for k, v in row.items() if v is not None and k != "config_json"}
    return json.dumps(shown, indent=1, default=str)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout goes to stderr meanwhile: Python's sys.stdout and file
    descriptor 1 itself, which child processes inherit (vLLM's engine core logs there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _as_group(cell: CellConfig, args: argparse.Namespace) -> int | None:
    """A cell whose engine runs as several MPI ranks (bench.measure.lockstep): outside mpirun, this
    command again under `mpirun -np N` (its exit code); a follower rank follows rank 0 (its
    exit code). None: this process runs the cell itself (rank 0, or a one-process cell)."""
    from bench.engines import ENGINES, mpi
    from bench.measure import lockstep

    rank, _ = mpi.mpi_world()
    if mpi.under_mpi() and rank == 0:
        return None
    engine_class = ENGINES[cell.engine.name]
    if mpi.under_mpi():
        return lockstep.follow(cell, engine_class)
    ranks = engine_class.mpi_ranks(cell)
    if ranks < 2 or mpi.mpirun_reason(ranks):  # no mpirun: the cell says unsupported
        return None
    return lockstep.relaunch(ranks, args.argv)


@contextlib.contextmanager
def _held_traceback(show: bool) -> Iterator[list[str]]:
    """The runner prints a failing cell's traceback on stderr, which a sweep keeps in the
    cell's log; on `run`'s terminal it is 40 lines under a one-line summary, so it is shown
    only when asked (`traceback=true`) and held (the list yielded) otherwise. It stands in
    for the traceback module in bench.cell.runner alone, while the cell runs."""
    import traceback

    from bench.measure import runner

    held: list[str] = []
    if show:
        yield held
        return

    class Held:
        def __getattr__(self, name: str) -> Any:  # everything else is the module's own
            return getattr(traceback, name)

        @staticmethod
        def print_exc(*args: Any, **kwargs: Any) -> None:
            held.append(traceback.format_exc())

    saved = runner.traceback
    runner.traceback = Held()  # type: ignore[assignment]
    try:
        yield held
    finally:
        runner.traceback = saved


def _run(args: argparse.Namespace) -> int:
    from bench.cell.runner import run_cell
    from bench.executors import check_executor
    from bench.plan.feasibility import planner_warnings
    from bench.plan.grid import compose_base, plan_from_overrides
    from bench.results.run_summary import run_summary

    show_traceback, overrides = _switch(args.overrides, "traceback")
    cfg = compose_base(overrides)
    plan = plan_from_overrides(overrides, base=cfg, check_executor=check_executor)
    if len(plan.cells) != 1:
        raise UsageError(f"run takes one cell; these overrides give {len(plan.cells)}: use sweep")
    if (code := _as_group(plan.cells[0], args)) is not None:
        return code
    # stdout carries only the summary or the row (`bench run ... format=json | jq`): what
    # libraries print while the cell runs (DeepSpeed logs to stdout on import) goes to stderr
    from bench.engines.process_groups import terminate_as_exit
    from bench.measure import progress

    progress.begin(progress.CellProgress(None, plan.sweep_id, plan.cells[0].cell_id, ""))
    # SIGTERM ends the cell as an exception would: a server it started is stopped on the way
    with stdout_to_stderr(), terminate_as_exit(), _held_traceback(show_traceback) as held:
        result = run_cell(plan.cells[0], planner_warnings)  # the phases print as they happen
    row = result.row
    if cfg.format == "json":
        print(_printable(row))
    else:
        hint = " (traceback=true prints its traceback)" if held else ""
        print(run_summary(row) + hint)
    return EXIT_OK if row["status"] == Status.OK else EXIT_CELL_FAILED


def _cell(args: argparse.Namespace) -> int:
    from bench.executors import executor_class, lease
    from bench.executors.environment import index_from_environment
    from bench.executors.job import job_cell, run_job
    from bench.plan.manifest import check_manifest_store

    index = args.index if args.index is not None else index_from_environment()
    check_manifest_store(args.manifest)  # unreachable or missing: one line, not 80 s of retries
    store, plan, cell = job_cell(args.manifest, index, args.array)  # its cell, read once
    if (code := _as_group(cell, args)) is not None:
        return code
    limit_s = executor_class(plan.executor)(plan.executor).attempt_limit_s
    outcome = run_job(store, plan, cell, lease.lease_seconds(limit_s))
    if outcome.result is None:  # stood down: nothing wrong, nothing written
        print(json.dumps({"cell_id": outcome.cell_id, "stood_down": outcome.stood_down}))
        return EXIT_OK
    row = outcome.result.row
    print(json.dumps({k: row.get(k) for k in ("cell_id", "status", "error", "attempt_id")}))
    return EXIT_OK if row["status"] == Status.OK else EXIT_CELL_FAILED


def _sweep_in_store(root: str, sweep_id: str, needs: str) -> tuple[Store, SweepPaths]:
    """The store at `root`, checked, and the sweep's paths there; one line (ConfigError) when
    the store is unusable or the sweep has no cell rows (`needs` "rows": collect, report) or
    no manifest ("manifest": status, which only reads)."""
    from bench.store import SweepPaths, open_store

    store = open_store(root)
    store.check(writing=needs == "rows")
    paths = SweepPaths(sweep_id)
    found = (
        store.has_files(paths.cells_dir, ".parquet")
        if needs == "rows"
        else store.exists(paths.manifest)
    )
    if not found:
        what = "cell rows" if needs == "rows" else "manifest"
        hint = _sweep_hint(store, sweep_id)
        raise ConfigError("sweep_id", sweep_id, f"no {what} under {store.uri(sweep_id)}{hint}")
    return store, paths


def _sweep_hint(store: Store, sweep_id: str) -> str:
    """'; did you mean ...' naming the store's sweeps a short or mistyped id stands for: the
    grid name a sweep id starts with (`smoke` for `smoke-2b29ec4c`, newest first), else the
    closest id. Empty when the store has none close."""
    from bench.config.checks import did_you_mean
    from bench.plan.history import list_sweeps

    try:
        ids = [s.sweep_id for s in list_sweeps(store, statuses=False)]
    except Exception:  # an unreadable store: the error names it already
        return ""
    started = [i for i in ids if i.startswith(f"{sweep_id}-")]
    if started:
        more = f" (or {len(started) - 1} more: python -m bench ls)" if len(started) > 1 else ""
        return f"; did you mean {started[0]}?{more}"
    return did_you_mean(sweep_id, ids)


def _collect(args: argparse.Namespace) -> int:
    from bench.config.compose import store_root
    from bench.results.collect import collect, summary_text

    # `format=csv|json`: the aggregate also as aggregated.csv / .json, for tools without Parquet
    exports = [o for o in args.overrides if o.startswith("format=")]
    export = exports[-1].removeprefix("format=") if exports else "table"
    if export not in EXPORT_FORMATS:
        raise ConfigError("format", export, f"collect writes one of {', '.join(EXPORT_FORMATS)}")
    root = store_root([o for o in args.overrides if not o.startswith("format=")])
    store, paths = _sweep_in_store(root, args.sweep_id, "rows")
    collected = collect(store, args.sweep_id, strict=args.strict)
    print(summary_text(collected))
    print(f"aggregated: {store.uri(paths.aggregated)}")
    if export != "table":
        out = paths.aggregated.removesuffix(".parquet") + f".{export}"
        store.write_bytes(out, export_bytes(collected.table, export))
        print(f"{export}: {store.uri(out)}")
    return EXIT_CELL_FAILED if collected.failed or collected.missing else EXIT_OK


EXPORT_FORMATS = ("table", "csv", "json")  # table: the Parquet aggregate alone


def export_bytes(table: Any, export: str) -> bytes:
    """The aggregate (a pyarrow table) as CSV (a header, one line per row) or JSON (an array
    of one object per row, timestamps as ISO 8601)."""
    import io

    import polars as pl

    frame = pl.from_arrow(table)
    buffer = io.BytesIO()
    if export == "csv":
        frame.write_csv(buffer)
    else:
        frame.write_json(buffer)
    return buffer.getvalue()


def _plan(args: argparse.Namespace) -> int:
    from bench.executors import check_executor
    from bench.plan.grid import compose_base, plan_from_overrides
    from bench.plan.history import cell_overhead
    from bench.plan.preflight import check_this_host
    from bench.plan.preview import format_plan, plan_report
    from bench.store import open_store
    from bench.sweep import make_executor

    cells, overrides = _switch(args.overrides, "cells")  # the table of cells, a line each
    cfg = compose_base(overrides)  # engine options wait for the engines that take them
    plan = plan_from_overrides(overrides, base=cfg, check_executor=check_executor)
    executor = make_executor(plan.executor)
    if executor.synchronous:  # as the sweep would: cells this host cannot run, at once
        check_this_host(plan)
    overhead = cell_overhead(
        open_store(plan.store_root),
        str(plan.executor.get("name")),
        serial=executor.synchronous,
        fallback_s=float(cfg.plan.cell_overhead_s),
        fallback_given=any(o.split("=")[0].lstrip("+") == OVERHEAD_KEY for o in overrides),
    )
    # cells run here: what this machine lacks (CUDA for device=cuda) counts, as in the sweep
    report = plan_report(plan, overhead, this_host=executor.synchronous)
    print(format_plan(report, str(cfg.format), cells=cells))
    return EXIT_OK


OVERHEAD_KEY = "plan.cell_overhead_s"  # given: it replaces the executor's default overhead


def _switch(overrides: list[str], key: str) -> tuple[bool, list[str]]:
    """A verb's own true/false option (`cells=true`; plan and run), and the overrides left
    for Hydra."""
    on, rest = False, []
    for override in overrides:
        name, _, value = override.partition("=")
        if name != key:
            rest.append(override)
        elif value.lower() in ("true", "false"):
            on = value.lower() == "true"
        else:
            raise ConfigError(key, value, "must be true or false")
    return on, rest


def _fit(args: argparse.Namespace) -> int:

    from bench.config.compose import compose_one
    from bench.config.schema import instance_from_catalog
    from bench.executors import check_executor
    from bench.plan.grid import plan_from_overrides
    from bench.plan.memory_estimate import given_parameters
    from bench.plan.preview import fit_rows, format_fit

    # `fit params=15e9` / `fit lbme_gb=30`: the fit section's keys, said the short way
    overrides = [
        f"fit.{o}" if o.split("=", 1)[0] in ("params", "lbme_gb") else o for o in args.overrides
    ]
    cfg = compose_one(overrides)
    cell = plan_from_overrides(overrides, check_executor=check_executor).cells[0]
    entries = _catalog_entries(cfg)
    catalog = [instance_from_catalog(entries, entry["type"]) for entry in entries]
    partitions = tuple(int(p) for p in cfg.fit.partitions)
    params = given_parameters(cfg.fit.params, cfg.fit.lbme_gb, cell.precision)
    rows = fit_rows(cell, catalog, float(cfg.fit.margin), partitions, params, str(cfg.pricing))
    what = f"{params / 1e9:.3g}B params" if params else cell.model.name
    header = (
        f"{what} {cell.precision} engine={cell.engine.name} "
        f"{cell.model.seq_len}+{cell.model.new_tokens} tokens x batch {cell.batch_size}; "
        f"borderline = over usable GPU memory by < {float(cfg.fit.margin):.0%}; "
        f"{cfg.pricing} prices"
    )
    print(format_fit(rows, str(cfg.format), header))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench.config.compose import compose_one
    from bench.results.collect import collect
    from bench.results.report import SLA_KEYS, Sla, build_report
    from bench.store import SweepPaths

    # `compare=BASE` (a sweep id or aggregate URI), `rate=R` and `ratio=A/B` add the decision
    # sections (the ratio table also by itself, for a sweep of exactly two instance types)
    base_spec = next((o.split("=", 1)[1] for o in args.overrides if o.startswith("compare=")), None)
    ratio = _ratio_option(args.overrides)
    ranges = {**COMPARE_OPTIONS, **CAPACITY_OPTIONS}
    options, rest = _verb_options(
        [o for o in args.overrides if not o.startswith(("compare=", "ratio="))], ranges
    )
    cfg = compose_one(rest)
    p99 = cfg.sla.p99_ms
    if options["rate"] is not None and p99 is None:
        raise ConfigError("sla.p99_ms", None, "rate= sizes a fleet for a target: give sla.p99_ms=X")
    store, _ = _sweep_in_store(str(cfg.store.root), args.sweep_id, "rows")
    frame = pd.DataFrame(collect(store, args.sweep_id).table.to_pandas())
    decisions = []
    if base_spec is not None:
        decisions.append(_comparison_section(base_spec, str(cfg.store.root), store, frame, options))
    if options["rate"] is not None:
        decisions.append(_fleet_section(store, frame, options, float(p99), cfg))
    if (pair := _ratio_pair(ratio, frame)) is not None:
        from bench.results.report_decisions import ratio_section

        decisions.append(ratio_section(frame, *pair))
    targets = Sla(
        **{key: float(v) if (v := cfg.sla.get(key)) is not None else None for key in SLA_KEYS}
    )
    built = build_report(frame, args.sweep_id, targets, decisions)
    folder = SweepPaths(args.sweep_id).report_dir
    for name, data in built.images.items():
        store.write_bytes(f"{folder}/{name}", data)
    store.write_bytes(f"{folder}/report.md", built.markdown.encode())
    store.write_bytes(f"{folder}/index.html", built.html.encode())
    print(built.markdown.split("## Plots")[0].rstrip())
    print(f"report: {store.uri(folder + '/index.html')} (and report.md, {len(built.images)} PNGs)")
    return EXIT_OK


RATIO_FORMAT = "INSTANCE_A/INSTANCE_B (the table of A over B), or off"


def _ratio_option(overrides: list[str]) -> tuple[str, str] | str | None:
    """`ratio=A/B` as (A, B), `ratio=off`, or None (not given: automatic); a malformed value
    is one line naming the form."""
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("ratio=")]
    if not given or given[-1] == "off":
        return given[-1] if given else None
    a, slash, b = given[-1].partition("/")
    if not (slash and a and b) or a == b or "/" in b:
        raise ConfigError("ratio", given[-1], RATIO_FORMAT)
    return a, b


def _ratio_pair(ratio: tuple[str, str] | str | None, frame: Any) -> tuple[str, str] | None:
    """The two instance types the ratio table compares: those given, both with ok rows in the
    sweep; without `ratio=`, a sweep's two (the dearer per hour over the cheaper), or none."""
    from bench.results.report_decisions import instance_types

    types = instance_types(frame)
    if ratio is None:
        return (types[0], types[1]) if len(types) == 2 else None
    if ratio == "off":
        return None
    if missing := [name for name in ratio if name not in types]:
        have = ", ".join(types) or "none"
        raise ConfigError(
            "ratio", "/".join(ratio), f"{missing[0]} has no ok rows here (has: {have})"
        )
    return ratio[0], ratio[1]


def _comparison_section(
    base_spec: str, root: str, store: Any, frame: Any, options: dict[str, float | None]
) -> Any:
    from bench.results.compare import compare
    from bench.results.report_decisions import comparison_section

    base_store, base_id, base = _sweep_rows(base_spec, root)
    threshold = float(options["threshold"] or 0.0)
    result = compare(base_store, base, store, frame, threshold, float(options["noise"] or 0.0))
    return comparison_section(result, base_id, threshold)


def _fleet_section(
    store: Any, frame: Any, options: dict[str, float | None], p99_ms: float, cfg: Any
) -> Any:
    from bench.results.report_decisions import fleet_section

    rate, peak = float(options["rate"] or 0.0), float(options["peak_to_mean"] or 1.0)
    table = _fleet(store, frame, rate, p99_ms, peak, cfg)
    return fleet_section(table, rate, peak, p99_ms)


def _prices(args: argparse.Namespace) -> int:
    from pathlib import Path

    import boto3
    from omegaconf import OmegaConf

    from bench.config.schema import conf_dir
    from bench.plan.prices import PRICING_API_REGION, refresh_catalog, write_catalog

    if not args.out:  # the installed package's catalog is never rewritten in place
        raise ConfigError("--out", None, "give the file to write the refreshed catalog to")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise ConfigError("--out", args.out, "its folder must exist")
    if boto3.Session().get_credentials() is None:
        raise ConfigError(
            "credentials",
            None,
            "the Price List API needs AWS credentials (environment, "
            "profile or instance role); none were found",
        )
    source = conf_dir() / "catalog.yaml"
    catalog = OmegaConf.to_container(OmegaConf.load(source))["catalog"]  # type: ignore[index]
    pricing = boto3.client("pricing", region_name=PRICING_API_REGION)
    ec2 = boto3.client("ec2", region_name=args.region) if args.spot else None
    refreshed = refresh_catalog(catalog, pricing, args.region, ec2)
    write_catalog(out, refreshed)
    print(f"updated {len(refreshed.updated)} prices in {out}")
    for instance in refreshed.unanswered:
        print(f"no price from the API for {instance}: kept the old one")
    return EXIT_OK


def _sweep_rows(spec: str, root: str) -> tuple[Any, str, Any]:
    """(store, sweep id, aggregate rows) of a sweep id in `root`, or of an aggregate's URI
    (<root>/<sweep_id>/aggregated.parquet, local or s3://)."""
    import io

    import pandas as pd

    from bench.plan.manifest import check_sweep_id
    from bench.store import SweepPaths, open_store

    if spec.endswith("/aggregated.parquet"):  # a URI the user spelled out: read where it says
        root, sweep_id = spec.removesuffix("/aggregated.parquet").rsplit("/", 1)
    else:
        sweep_id = spec
        check_sweep_id(sweep_id)  # a folder of the store, never a path out of it
    store = open_store(root)
    store.check(writing=False)
    try:
        data = store.read_bytes(SweepPaths(sweep_id).aggregated)
    except FileNotFoundError:
        paths = SweepPaths(sweep_id)
        if store.exists(paths.manifest):  # the sweep is here; its rows were never collected
            why = f"not collected yet: python -m bench collect {sweep_id} store.root={root}"
        else:  # not this store's: a short id, a typo, or a sweep kept elsewhere
            why = (
                f"no sweep {sweep_id} in the store {root}{_sweep_hint(store, sweep_id)}; a "
                "sweep in another store is named by its aggregate's URI "
                "(ROOT/SWEEP_ID/aggregated.parquet)"
            )
        raise ConfigError("sweep", spec, why) from None
    return store, sweep_id, pd.read_parquet(io.BytesIO(data))


# each verb's own numeric options: key -> (default, lowest, highest)
COMPARE_OPTIONS = {"threshold": (0.05, 0.0, 1.0), "noise": (0.01, 0.0, 1.0)}
CAPACITY_OPTIONS = {"rate": (None, 1e-9, 1e9), "peak_to_mean": (1.0, 1.0, 100.0)}


def _verb_options(
    overrides: list[str], ranges: dict[str, tuple[float | None, float, float]]
) -> tuple[dict[str, float | None], list[str]]:
    """A verb's own numeric `key=value` options (ranges: key -> (default, low, high)),
    validated, and the overrides left for Hydra."""
    from bench.config.checks import finite_number

    values = {key: default for key, (default, _, _) in ranges.items()}
    rest = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key in ranges:
            values[key] = finite_number(key, value, low=ranges[key][1], high=ranges[key][2])
        else:
            rest.append(override)
    return values, rest


def _compare(args: argparse.Namespace) -> int:
    """`compare BASE NEW`, or `compare SWEEP ab=KEY` (one interleaved A/B sweep split on its
    axis KEY); `host_check=off` skips the noise guard. Exit 0 no regression, 1 regression,
    2 usage, 3 the sides' hosts differed (mismatched or unequally loaded): re-run."""
    import io

    from bench.config.compose import compose_one
    from bench.results.compare import MATCH_KEYS, compare, comparison_text
    from bench.results.compare_ab import split_sides

    # a word with '=' in NEW's place is an option (`compare SWEEP ab=KEY`), never a sweep id
    words = list(args.overrides)
    new_spec: str | None = args.new
    if "=" in args.new and not args.new.endswith("/aggregated.parquet"):
        words, new_spec = [args.new, *words], None
    own = dict(w.split("=", 1) for w in words if w.startswith(("ab=", "host_check=")))
    words = [w for w in words if not w.startswith(("ab=", "host_check="))]
    ab = own.get("ab")
    if ab is not None and (not ab or new_spec is not None):
        raise ConfigError("ab", ab, "splits one sweep: python -m bench compare SWEEP ab=KEY")
    if ab is None and new_spec is None:
        raise UsageError("compare takes BASE NEW, or one A/B sweep: compare SWEEP ab=KEY")
    host_check = own.get("host_check", "on").lower()
    if host_check not in ("on", "off", "true", "false"):
        raise ConfigError("host_check", host_check, "on (default) or off")
    options, rest = _verb_options(words, COMPARE_OPTIONS)
    threshold = float(options["threshold"] or 0.0)
    cfg = compose_one(rest)
    root = str(cfg.store.root)
    base_store, base_id, base = _sweep_rows(args.base, root)
    if ab is not None:
        new_store, new_id = base_store, base_id
        base, new, values = split_sides(base, ab)
        out = f"{base_id}/compared/ab-{ab}.parquet"
        what = f"{args.base}'s {ab}={values[0]} and {ab}={values[1]}"
    else:
        new_store, new_id, new = _sweep_rows(str(new_spec), root)
        out = f"{new_id}/compared/{base_id}.parquet"
        what = f"{args.base} and {new_spec}"
    noise = float(options["noise"] or 0.0)
    result = compare(
        base_store, base, new_store, new, threshold, noise, ab, host_check in ("on", "true")
    )
    if result.table.empty:  # neither a pass nor a regression: nothing was compared
        raise UsageError(
            f"no ok cells of {what} match on {', '.join(MATCH_KEYS)}: nothing to compare"
        )
    buffer = io.BytesIO()
    result.table.to_parquet(buffer, index=False)
    new_store.write_bytes(out, buffer.getvalue())
    if cfg.format == "json":  # stdout stays JSON; what the verdicts rest on goes to stderr
        print(result.table.to_json(orient="records", indent=1))
        host = [result.host.line()] if result.host is not None else []
        print("\n".join([*result.notes, *host]), file=sys.stderr)
    else:
        print(comparison_text(result, threshold))
        print(f"comparison: {new_store.uri(out)}")
    return result.exit_code


def _capacity(args: argparse.Namespace) -> int:
    from bench.config.compose import compose_one
    from bench.results.capacity import fleet_text

    options, rest = _verb_options(args.overrides, CAPACITY_OPTIONS)
    if options["rate"] is None:
        raise ConfigError("rate", None, "give the target load in inferences per second, rate=R")
    cfg = compose_one(rest)
    p99_ms = cfg.sla.p99_ms
    if p99_ms is None:
        raise ConfigError("sla.p99_ms", None, "give the latency target, sla.p99_ms=X")
    store, _, rows = _sweep_rows(args.sweep_id, str(cfg.store.root))
    rate, peak = float(options["rate"]), float(options["peak_to_mean"] or 1.0)
    table = _fleet(store, rows, rate, float(p99_ms), peak, cfg)
    if cfg.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        print(fleet_text(table, rate, peak, float(p99_ms)))
    return EXIT_OK


def _fleet(store: Any, rows: Any, rate: float, p99_ms: float, peak: float, cfg: Any) -> Any:
    """capacity.plan_fleet over a sweep's ok rows and their stored latencies."""
    from bench.results.capacity import plan_fleet, service_times
    from bench.results.compare import cell_samples

    latencies = {
        # service times: an open-loop cell's samples include its queueing, which the model adds
        str(row["cell_id"]): service_times(table)
        for _, row in rows[rows["status"] == Status.OK].iterrows()
        if (table := cell_samples(store, row)) is not None
    }
    return plan_fleet(rows, latencies, rate, p99_ms, peak, _spot_prices(cfg))


def _catalog_entries(cfg: Any) -> list[dict[str, Any]]:
    """The composed config's instance types, the user's own (catalog.extra) included."""
    from omegaconf import OmegaConf

    from bench.config.schema import catalog_entries

    return catalog_entries(OmegaConf.to_container(cfg.catalog, resolve=True))  # type: ignore[arg-type]


def _spot_prices(cfg: Any) -> dict[str, float]:
    """Instance type -> Spot $/hour, for the types the catalog has one for."""
    entries = _catalog_entries(cfg)
    return {e["type"]: float(e["spot_usd_per_hour"]) for e in entries if e.get("spot_usd_per_hour")}


def _ls(args: argparse.Namespace) -> int:
    from bench.config.compose import store_root
    from bench.plan.history import list_sweeps, sweeps_table
    from bench.plan.manifest import unreadable_manifests
    from bench.store import open_store

    store = open_store(store_root(args.overrides))
    store.check(writing=False)
    sweeps = list_sweeps(store)
    print(sweeps_table(sweeps, store.root_uri))
    for reason in unreadable_manifests(store, {s.sweep_id for s in sweeps}):
        print(f"unreadable: {reason}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    import time
    from collections import Counter

    from bench.config.compose import compose_one
    from bench.executors import lease
    from bench.executors.base import read_submissions
    from bench.measure import progress
    from bench.results.collect import collect
    from bench.sweep import make_executor, submissions_table

    cfg = compose_one(args.overrides)
    store, _ = _sweep_in_store(str(cfg.store.root), args.sweep_id, "manifest")
    submissions = read_submissions(store, args.sweep_id)
    by_executor: dict[str, list] = {}
    for sub in submissions:
        by_executor.setdefault(sub.executor, []).append(sub)
    for name, subs in by_executor.items():
        options = {**(cfg.executor if cfg.executor.name == name else {}), "name": name}
        print(submissions_table(make_executor(dict(options)).describe(subs)))
    running = set()
    for cell_id, holder in lease.holders(store, args.sweep_id):
        running.add(cell_id)
        said = progress.read_phase(store, args.sweep_id, cell_id)
        phase = ""
        if said is not None and said.get("attempt") == holder.attempt:
            phase = f" ({said['phase']} for {time.time() - float(said['since']):.0f} s)"
        print(f"measuring now: {cell_id}{phase}: {holder.describe()}")
    collected = collect(store, args.sweep_id, write=False)
    counts = Counter(collected.table.column("status").to_pylist())
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    pending = [c for c in collected.missing if c not in running]
    print(
        f"sweep {args.sweep_id}: {len(collected.expected)} cells; rows: {statuses}; "
        f"running {len(running)}; pending (no row yet) {len(pending)}"
    )
    return EXIT_OK


def _print_cfg(args: argparse.Namespace) -> int:
    """`--cfg job`: the first cell's full config, as its job will get it (YAML)."""
    from omegaconf import OmegaConf

    from bench.executors import check_executor
    from bench.plan.grid import plan_from_overrides

    if args.verb not in ("sweep", "run", "plan"):
        raise UsageError(f"--cfg job goes with sweep, run or plan, not {args.verb}")
    plan = plan_from_overrides(args.overrides, check_executor=check_executor)
    print(OmegaConf.to_yaml(plan.cells[0].to_dict()), end="")
    if len(plan.cells) > 1:
        print(f"(cell 1 of {len(plan.cells)}; `plan` lists them all)", file=sys.stderr)
    return EXIT_OK


HANDLERS = {
    "sweep": _sweep,
    "run": _run,
    "cell": _cell,
    "collect": _collect,
    "status": _status,
    "plan": _plan,
    "fit": _fit,
    "report": _report,
    "prices": _prices,
    "ls": _ls,
    "compare": _compare,
    "capacity": _capacity,
}


def redact(text: str) -> str:
    """A message with the secrets bench holds masked (bench.config.secrets): errors echo
    endpoints, and servers echo headers."""
    from bench.config.secrets import redact as masked

    return masked(text)


GLOBAL_FLAGS = ("--config-dir", "--cfg")
CFG_CHOICES = ("job",)


def _global_flags(argv: list[str]) -> tuple[list[str], list[str], str | None]:
    """Take `--config-dir DIR` (repeatable) and `--cfg job` from anywhere on the line, as
    Hydra's own CLI does: (the rest, the config dirs, the --cfg value)."""
    rest, dirs, cfg = [], [], None
    words = iter(argv)
    for word in words:
        flag, eq, value = word.partition("=")
        if flag not in GLOBAL_FLAGS:
            rest.append(word)
            continue
        if not eq:
            value = next(words, "")
        if not value or value.startswith("-"):
            raise UsageError(f"{flag} needs a value")
        if flag == "--cfg":
            if value not in CFG_CHOICES:
                raise ConfigError("--cfg", value, "allowed: " + ", ".join(CFG_CHOICES))
            cfg = value
        else:
            dirs.append(value)
    return rest, dirs, cfg


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments; overrides may come before or after the verb's options
    (`collect SWEEP --strict store.root=DIR` as well as `collect SWEEP store.root=DIR --strict`)."""
    argv, config_dirs, cfg = _global_flags(list(sys.argv[1:] if argv is None else argv))
    for folder in config_dirs:
        add_config_dir(folder)
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    args.cfg = cfg
    stray = [a for a in extra if a.startswith("-")]
    if stray or (extra and args.verb not in VERBS_WITH_OVERRIDES):
        parser.parse_args(argv)  # argparse's own one-line error and exit 2
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    from bench.config.secrets import redact_output
    from bench.executors.base import SubmissionFailed
    from bench.results.collect import UnreadableCellFile

    redact_output()
    try:
        args = _arguments(argv)
    except (ConfigError, UsageError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to run again under mpirun
    try:
        if args.cfg is not None:
            return _print_cfg(args)
        if getattr(args, "sweep_id", None) is not None:  # collect, report, status
            from bench.plan.manifest import check_sweep_id

            check_sweep_id(args.sweep_id)  # a path under the store, never outside it
        return HANDLERS[args.verb](args)
    except (ConfigError, UsageError, StoreError, UnreadableCellFile, SubmissionFailed) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, IndexError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `plan ... | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return EXIT_OK
    except KeyboardInterrupt:
        print(
            "interrupted: the running cell was stopped and wrote no row; run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as exc:  # last: every other handler has had its turn
        # AWS's client library failing outside the code that already says so in one line
        # (an endpoint gone, a read cut off): one line too, not a traceback
        if not type(exc).__module__.startswith("botocore."):
            raise
        print(f"error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
