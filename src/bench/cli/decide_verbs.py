"""The verbs that decide from collected sweeps: `report` (plots, the recommendation and the
decision sections asked for), `compare` (faster, slower or no significant change) and
`capacity` (the fleet that serves a rate under an SLA)."""

from __future__ import annotations

import argparse
import sys

from bench.cli.exit_codes import EXIT_OK
from bench.config.checks import ConfigError


def report(args: argparse.Namespace) -> int:
    from bench.config.catalog import composed_catalog, spot_prices
    from bench.config.compose import compose_one
    from bench.results.sweep_report import ReportAsks, report_sweep, sla_from
    from bench.results.sweep_rows import find_sweep

    cfg = compose_one(args.overrides)
    if args.rate is not None and cfg.sla.p99_ms is None:
        raise ConfigError("sla.p99_ms", None, "rate= sizes a fleet for a target: give sla.p99_ms=X")
    root = str(cfg.store.root)
    store, _ = find_sweep(root, args.sweep_id, "rows")
    asks = ReportAsks(
        compare_to=args.compare_to,
        threshold=args.threshold,
        noise=args.noise,
        rate=args.rate,
        peak_to_mean=args.peak_to_mean,
        ratio=args.ratio,
    )
    # Spot prices only size a fleet: the catalog is read only when a rate asks for one
    spot = spot_prices(composed_catalog(cfg)) if args.rate is not None else {}
    written = report_sweep(store, args.sweep_id, root, sla_from(cfg.sla), asks, spot)
    print(written.report.markdown.split("## Plots")[0].rstrip())
    print(f"report: {written.uri} (and report.md, {len(written.report.images)} PNGs)")
    return EXIT_OK


def compare(args: argparse.Namespace) -> int:
    """`compare BASE NEW`, or `compare SWEEP ab=KEY`; exit 0 no regression, 1 a regression,
    3 the sides' hosts differed (mismatched or unequally loaded): re-run."""
    from bench.config.compose import compose_one
    from bench.results.compare import comparison_text
    from bench.results.compare_sweeps import compare_sweeps

    cfg = compose_one(args.overrides)
    compared = compare_sweeps(
        args.base,
        args.new,
        str(cfg.store.root),
        ab=args.ab,
        threshold=args.threshold,
        noise=args.noise,
        host_check=args.host_check,
    )
    result = compared.result
    if cfg.format == "json":  # stdout stays JSON; what the verdicts rest on goes to stderr
        print(result.table.to_json(orient="records", indent=1))
        host = [result.host.line()] if result.host is not None else []
        print("\n".join([*result.notes, *host]), file=sys.stderr)
    else:
        print(comparison_text(result, args.threshold))
        print(f"comparison: {compared.uri}")
    return result.exit_code


def capacity(args: argparse.Namespace) -> int:
    from bench.config.catalog import composed_catalog, spot_prices
    from bench.config.compose import compose_one
    from bench.results.capacity import fleet_text
    from bench.results.fleet import sweep_fleet
    from bench.results.sweep_rows import read_aggregate

    cfg = compose_one(args.overrides)
    p99_ms = cfg.sla.p99_ms
    if p99_ms is None:
        raise ConfigError("sla.p99_ms", None, "give the latency target, sla.p99_ms=X")
    store, _, rows = read_aggregate(args.sweep_id, str(cfg.store.root))
    spot = spot_prices(composed_catalog(cfg))
    table = sweep_fleet(store, rows, args.rate, float(p99_ms), args.peak_to_mean, spot)
    if cfg.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        print(fleet_text(table, args.rate, args.peak_to_mean, float(p99_ms)))
    return EXIT_OK
