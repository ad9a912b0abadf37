"""`main`: parse the command line, run its verb, and turn what went wrong into an exit code
and one line on stderr (bench.cli.exit_codes)."""

from __future__ import annotations

import os
import sys

from bench.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from bench.cli.parser import HANDLERS, parse_command_line
from bench.cli.plan_verbs import print_config
from bench.cli.printing import say_error
from bench.config.checks import ConfigError, UsageError
from bench.store import StoreError

INTERRUPTED = (
    "interrupted: the running cell was stopped and wrote no row; run the same command again "
    "to resume"
)


def main(argv: list[str] | None = None) -> int:
    from bench.config.secrets import redact_output
    from bench.executors.base import SubmissionFailed
    from bench.results.collect import UnreadableCellFile

    redact_output()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_command_line(words)
    except (ConfigError, UsageError) as exc:
        say_error(str(exc))
        return EXIT_USAGE
    args.argv = words  # to run again under mpirun
    try:
        if args.cfg is not None:
            return print_config(args)
        return HANDLERS[args.verb](args)
    except (ConfigError, UsageError, StoreError, UnreadableCellFile, SubmissionFailed) as exc:
        say_error(str(exc))
        return EXIT_USAGE
    except (FileNotFoundError, IndexError, ValueError) as exc:
        say_error(f"{type(exc).__name__}: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:  # `plan ... | head`: the reader left; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return EXIT_OK
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # last: every other handler has had its turn
        # AWS's client library failing outside the code that already says so in one line
        # (an endpoint gone, a read cut off): one line too, not a traceback
        if not type(exc).__module__.startswith("botocore."):
            raise
        say_error(f"{type(exc).__name__}: {exc}")
        return EXIT_USAGE
