"""One cell, run in this process: measure it (bench.measure, over its engine) and build its
row (bench.row). What a job, the fork server and `bench run` call."""
