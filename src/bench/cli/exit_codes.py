"""What `python -m bench` exits with (compare's 3, "re-run", is bench.results.compare's)."""

EXIT_OK = 0
EXIT_CELL_FAILED = 1  # some cell failed or timed out; its row says why
EXIT_USAGE = 2  # bad input or an unusable store: one line, nothing written
EXIT_INTERRUPTED = 130  # Ctrl-C: the running cell was stopped; the same command resumes
