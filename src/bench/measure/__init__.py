"""Measuring one cell: the runner, the scenarios and load generators, statistics, and the
probes of the host and the device."""
