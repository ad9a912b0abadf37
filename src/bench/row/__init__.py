"""A result row: the one schema (shared columns, and each scenario's and workload's own), its
statuses, and every builder of a row (a measured cell's, a planner's, a crashed job's)."""
