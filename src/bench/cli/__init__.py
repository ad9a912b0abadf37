"""Command line: `python -m bench VERB [options] [hydra overrides]`. It parses the line
(parser), runs the verb (run_verbs, plan_verbs, store_verbs, decide_verbs: each parses
nothing and calls the package that does the work) and prints; main (entry) turns what
went wrong into an exit code.

Exit codes: 0 all good; 1 some cell failed or timed out (its row says why); 2 bad input or an
unusable store (one line naming the key, the value and what is allowed; nothing written); 3
compare's sides ran on hosts too different to call (re-run); 130 interrupted (Ctrl-C: the
running cell's process is ended, and the same command resumes).
"""

from bench.cli.entry import main
from bench.cli.parser import HANDLERS

__all__ = ["HANDLERS", "main"]
