"""Planning: from a grid to a manifest. Cells, memory estimates, feasibility, prices, and the
preview of what a sweep will do and cost."""
