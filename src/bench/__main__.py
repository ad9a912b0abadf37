"""`python -m bench VERB [options] [hydra overrides]`."""

from bench.cli import main

raise SystemExit(main())
