"""The verbs that plan without running: `plan` (a grid's cells, their decisions and the
sweep's cost), `fit` (the instance types that can host a model), `prices refresh` (the
catalog's prices from AWS) and `--cfg job` (the first cell's composed config)."""

from __future__ import annotations

import argparse
import sys

from bench.cli.exit_codes import EXIT_OK
from bench.config.checks import ConfigError, UsageError

OVERHEAD_KEY = "plan.cell_overhead_s"  # given: it replaces the executor's default overhead


def plan(args: argparse.Namespace) -> int:
    from bench.executors import check_executor
    from bench.plan.grid import compose_base, plan_from_overrides
    from bench.plan.history import cell_overhead
    from bench.plan.preflight import check_this_host
    from bench.plan.preview import format_plan, plan_report
    from bench.store import open_store
    from bench.sweep import make_executor

    cfg = compose_base(args.overrides)  # engine options wait for the engines that take them
    planned = plan_from_overrides(args.overrides, base=cfg, check_executor=check_executor)
    executor = make_executor(planned.executor)
    if executor.synchronous:  # as the sweep would: cells this host cannot run, at once
        check_this_host(planned)
    overhead = cell_overhead(
        open_store(planned.store_root),
        str(planned.executor.get("name")),
        serial=executor.synchronous,
        fallback_s=float(cfg.plan.cell_overhead_s),
        fallback_given=any(o.split("=")[0].lstrip("+") == OVERHEAD_KEY for o in args.overrides),
    )
    # cells run here: what this machine lacks (CUDA for device=cuda) counts, as in the sweep
    report = plan_report(planned, overhead, this_host=executor.synchronous)
    print(format_plan(report, str(cfg.format), cells=args.cells))
    return EXIT_OK


def fit(args: argparse.Namespace) -> int:
    from bench.config.catalog import composed_catalog
    from bench.config.compose import compose_one
    from bench.config.schema import instance_from_catalog
    from bench.executors import check_executor
    from bench.plan.grid import plan_from_overrides
    from bench.plan.memory_estimate import given_parameters
    from bench.plan.preview import fit_rows, format_fit

    cfg = compose_one(args.overrides)
    cell = plan_from_overrides(args.overrides, check_executor=check_executor).cells[0]
    entries = composed_catalog(cfg)
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


def prices(args: argparse.Namespace) -> int:
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


def print_config(args: argparse.Namespace) -> int:
    """`--cfg job`: the first cell's full config, as its job will get it (YAML)."""
    from omegaconf import OmegaConf

    from bench.executors import check_executor
    from bench.plan.grid import plan_from_overrides

    if args.verb not in ("sweep", "run", "plan"):
        raise UsageError(f"--cfg job goes with sweep, run or plan, not {args.verb}")
    planned = plan_from_overrides(args.overrides, check_executor=check_executor)
    print(OmegaConf.to_yaml(planned.cells[0].to_dict()), end="")
    if len(planned.cells) > 1:
        print(f"(cell 1 of {len(planned.cells)}; `plan` lists them all)", file=sys.stderr)
    return EXIT_OK
