"""Results: collecting attempts into the aggregate, and the reports and comparisons that
decide from it."""
