"""The command line's grammar, all of it: the verbs and their arguments (argparse, with each
verb's help and examples), `--config-dir` and `--cfg` anywhere on the line, and each verb's
own `key=value` options, taken out of the overrides before Hydra sees the rest. A verb's
function (HANDLERS) gets its words parsed and checked; it parses nothing itself."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bench.cli import decide_verbs, plan_verbs, run_verbs, store_verbs
from bench.cli.help_text import (
    DESCRIPTION,
    GLOBAL_FLAGS_HELP,
    KEYS_DOCUMENTED,
    VERB_EXAMPLES,
    VERBS_HELP,
)
from bench.config.checks import ConfigError, UsageError, check_sweep_id, finite_number
from bench.config.schema import add_config_dir
from bench.results.aggregate_export import EXPORT_FORMATS

Handler = Callable[[argparse.Namespace], int]
# in the order --help lists them
HANDLERS: dict[str, Handler] = {
    "sweep": run_verbs.sweep,
    "run": run_verbs.run,
    "plan": plan_verbs.plan,
    "fit": plan_verbs.fit,
    "ls": store_verbs.ls,
    "cell": run_verbs.cell,
    "report": decide_verbs.report,
    "prices": plan_verbs.prices,
    "compare": decide_verbs.compare,
    "capacity": decide_verbs.capacity,
    "status": store_verbs.status,
    "collect": store_verbs.collect,
}
VERBS_WITH_OVERRIDES = (
    "sweep", "run", "plan", "fit", "report", "status", "collect", "ls", "compare", "capacity"
)  # fmt: skip
SWEEP_ARGUMENT = "the sweep's folder name in the store"
OVERRIDES_HELP = {
    "report": "e.g. sla.p99_ms=50 store.root=DIR",
    "compare": "threshold=0.05 noise=0.01 format=json store.root=DIR",
    "capacity": "rate=R sla.p99_ms=X [peak_to_mean=K] [format=json] [store.root=DIR]",
    "status": "Hydra overrides, e.g. store.root=s3://b/p",
    "collect": "Hydra overrides, e.g. store.root=DIR",
}
GLOBAL_FLAGS = ("--config-dir", "--cfg")
CFG_CHOICES = ("job",)

# Each verb's own options, never Hydra's. Numeric ones: key -> (default, lowest, highest).
COMPARE_OPTIONS = {"threshold": (0.05, 0.0, 1.0), "noise": (0.01, 0.0, 1.0)}
CAPACITY_OPTIONS = {"rate": (None, 1e-9, 1e9), "peak_to_mean": (1.0, 1.0, 100.0)}
NUMERIC_OPTIONS = {
    "compare": COMPARE_OPTIONS,
    "capacity": CAPACITY_OPTIONS,
    "report": {**COMPARE_OPTIONS, **CAPACITY_OPTIONS},
}
SWITCHES = {"plan": "cells", "run": "traceback"}  # a verb's own true/false option
FIT_SHORT_KEYS = ("params", "lbme_gb")  # `fit params=15e9`: fit.params, said the short way
COMPARE_WORDS = ("ab=", "host_check=")  # compare's own words that are not numbers
RATIO_FORMAT = "INSTANCE_A/INSTANCE_B (the table of A over B), or off"


def _verb_epilog(verb: str) -> str:
    examples = "\n".join(f"  {line}" for line in VERB_EXAMPLES.get(verb, []))
    return f"examples:\n{examples}\n\n{KEYS_DOCUMENTED}"


def _main_epilog() -> str:
    """The grids and models that come with bench (and a --config-dir's), and the flags."""
    from bench.config.schema import group_options

    return (
        f"grids (+grid=NAME): {', '.join(group_options('grid'))}\n"
        f"models (model=NAME): {', '.join(group_options('model'))}\n\n"
        f"{KEYS_DOCUMENTED}\n{GLOBAL_FLAGS_HELP}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=DESCRIPTION,
        epilog=_main_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    subs = {
        verb: verbs.add_parser(
            verb,
            help=VERBS_HELP[verb],
            description=VERBS_HELP[verb],
            epilog=_verb_epilog(verb),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for verb in HANDLERS
    }
    cell = subs["cell"]
    cell.add_argument("--manifest", required=True, help="URI of <root>/<sweep_id>/manifest.json")
    cell.add_argument("--index", type=int, default=None, help="cell index (default: from env)")
    cell.add_argument(
        "--array", default=None, help="array map name: --index / the env index is its child"
    )
    prices = subs["prices"]
    prices.add_argument("action", choices=["refresh"])
    prices.add_argument("--region", default="us-east-1", help="region whose prices to read")
    prices.add_argument("--spot", action="store_true", help="also read current Spot prices")
    prices.add_argument("--out", default=None, help="catalog file to write (required)")
    compare = subs["compare"]
    compare.add_argument("base", help="sweep id in the store, or URI of an aggregated.parquet")
    compare.add_argument("new", help="sweep id in the store, or URI of an aggregated.parquet")
    for verb in ("report", "capacity", "status", "collect"):
        subs[verb].add_argument("sweep_id", help=SWEEP_ARGUMENT)
    subs["collect"].add_argument(
        "--strict", action="store_true", help="an unreadable cell file is fatal"
    )
    for verb in VERBS_WITH_OVERRIDES:
        # default=[]: argparse counts a bare nargs="*" positional as required in its error line
        subs[verb].add_argument(
            "overrides",
            nargs="*",
            default=[],
            help=OVERRIDES_HELP.get(verb, "Hydra overrides (key=value)"),
        )
    return parser


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
    """The verb and its arguments, the verb's own options still among its overrides;
    overrides may come before or after the verb's options (`collect SWEEP --strict
    store.root=DIR` as well as `collect SWEEP store.root=DIR --strict`)."""
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


def _verb_options(
    overrides: list[str], ranges: dict[str, tuple[float | None, float, float]]
) -> tuple[dict[str, float | None], list[str]]:
    """A verb's own numeric `key=value` options (ranges: key -> (default, low, high)),
    validated, and the overrides left for Hydra."""
    values = {key: default for key, (default, _, _) in ranges.items()}
    rest = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key in ranges:
            values[key] = finite_number(key, value, low=ranges[key][1], high=ranges[key][2])
        else:
            rest.append(override)
    return values, rest


def _switch(overrides: list[str], key: str) -> tuple[bool, list[str]]:
    """A verb's own true/false option (`cells=true`), and the overrides left for Hydra."""
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


def ratio_option(overrides: list[str]) -> tuple[str, str] | str | None:
    """`ratio=A/B` as (A, B), `ratio=off`, or None (not given: automatic); a malformed value
    is one line naming the form."""
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("ratio=")]
    if not given or given[-1] == "off":
        return given[-1] if given else None
    a, slash, b = given[-1].partition("/")
    if not (slash and a and b) or a == b or "/" in b:
        raise ConfigError("ratio", given[-1], RATIO_FORMAT)
    return a, b


def _export_option(args: argparse.Namespace, words: list[str]) -> list[str]:
    """collect's `format=csv|json`: the aggregate also as aggregated.csv / .json."""
    exports = [w for w in words if w.startswith("format=")]
    args.export = exports[-1].removeprefix("format=") if exports else "table"
    if args.export not in EXPORT_FORMATS:
        raise ConfigError(
            "format", args.export, f"collect writes one of {', '.join(EXPORT_FORMATS)}"
        )
    return [w for w in words if not w.startswith("format=")]


def _compare_words(args: argparse.Namespace, words: list[str]) -> list[str]:
    """compare's `ab=KEY` (one interleaved A/B sweep, split on its axis KEY) and
    `host_check=on|off` (the noise guard); a word with '=' in NEW's place is such an option
    (`compare SWEEP ab=KEY`), never a sweep id."""
    if "=" in args.new and not args.new.endswith("/aggregated.parquet"):
        words, args.new = [args.new, *words], None
    own = dict(w.split("=", 1) for w in words if w.startswith(COMPARE_WORDS))
    words = [w for w in words if not w.startswith(COMPARE_WORDS)]
    args.ab = own.get("ab")
    if args.ab is not None and (not args.ab or args.new is not None):
        raise ConfigError("ab", args.ab, "splits one sweep: python -m bench compare SWEEP ab=KEY")
    if args.ab is None and args.new is None:
        raise UsageError("compare takes BASE NEW, or one A/B sweep: compare SWEEP ab=KEY")
    host_check = own.get("host_check", "on").lower()
    if host_check not in ("on", "off", "true", "false"):
        raise ConfigError("host_check", host_check, "on (default) or off")
    args.host_check = host_check in ("on", "true")
    return words


def _report_words(args: argparse.Namespace, words: list[str]) -> list[str]:
    """report's `compare=BASE` (a sweep id or aggregate URI: the comparison section) and
    `ratio=A/B` (the table of instance type A over B)."""
    args.compare_to = next((w.split("=", 1)[1] for w in words if w.startswith("compare=")), None)
    args.ratio = ratio_option(words)
    return [w for w in words if not w.startswith(("compare=", "ratio="))]


def take_own_options(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with its sweep id checked and its verb's own options taken out of its overrides
    into attributes of their own (cells, traceback, export, ab, host_check, compare_to,
    ratio, threshold, noise, rate, peak_to_mean); one line (ConfigError) for a bad one."""
    if getattr(args, "sweep_id", None) is not None:  # collect, report, status, capacity
        check_sweep_id(args.sweep_id)  # a path under the store, never outside it
    words = list(getattr(args, "overrides", []))
    if args.verb == "fit":
        words = [f"fit.{w}" if w.split("=", 1)[0] in FIT_SHORT_KEYS else w for w in words]
    elif args.verb == "collect":
        words = _export_option(args, words)
    elif args.verb == "compare":
        words = _compare_words(args, words)
    elif args.verb == "report":
        words = _report_words(args, words)
    if args.verb in SWITCHES:
        on, words = _switch(words, SWITCHES[args.verb])
        setattr(args, SWITCHES[args.verb], on)
    if args.verb in NUMERIC_OPTIONS:
        values, words = _verb_options(words, NUMERIC_OPTIONS[args.verb])
        for key, value in values.items():
            setattr(args, key, value)
    if args.verb == "capacity" and args.rate is None:
        raise ConfigError("rate", None, "give the target load in inferences per second, rate=R")
    if hasattr(args, "overrides"):
        args.overrides = words
    return args


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The command line (sys.argv's when None), parsed and checked: argparse's own errors
    exit 2 with its usage; every other bad word is a ConfigError or UsageError."""
    return take_own_options(_arguments(argv))
