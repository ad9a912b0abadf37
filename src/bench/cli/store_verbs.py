"""The verbs that read a store's sweeps: `collect` (a sweep's rows into its aggregate),
`status` (a sweep's jobs, the cells being measured, its rows so far) and `ls` (the store's
sweeps)."""

from __future__ import annotations

import argparse

from bench.cli.exit_codes import EXIT_CELL_FAILED, EXIT_OK


def collect(args: argparse.Namespace) -> int:
    from bench.config.compose import store_root
    from bench.results.aggregate_export import write_export
    from bench.results.collect import collect as collect_rows
    from bench.results.collect import summary_text
    from bench.results.sweep_rows import find_sweep

    store, paths = find_sweep(store_root(args.overrides), args.sweep_id, "rows")
    collected = collect_rows(store, args.sweep_id, strict=args.strict)
    print(summary_text(collected))
    print(f"aggregated: {store.uri(paths.aggregated)}")
    if args.export != "table":
        print(f"{args.export}: {write_export(store, args.sweep_id, collected.table, args.export)}")
    return EXIT_CELL_FAILED if collected.failed or collected.missing else EXIT_OK


def status(args: argparse.Namespace) -> int:
    from bench.config.compose import compose_one
    from bench.results.sweep_rows import find_sweep
    from bench.results.sweep_status import sweep_status
    from bench.sweep import submissions_table

    cfg = compose_one(args.overrides)
    store, _ = find_sweep(str(cfg.store.root), args.sweep_id, "manifest")
    found = sweep_status(store, args.sweep_id, cfg.executor)
    for jobs in found.jobs:
        print(submissions_table(jobs))
    for cell in found.measuring:
        phase = f" ({cell.phase} for {cell.phase_s:.0f} s)" if cell.phase is not None else ""
        print(f"measuring now: {cell.cell_id}{phase}: {cell.holder}")
    print(found.summary())
    return EXIT_OK


def ls(args: argparse.Namespace) -> int:
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
