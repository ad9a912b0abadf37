"""Results: the row schema, the stores, collecting attempts into the aggregate, and the
reports that decide from it."""
