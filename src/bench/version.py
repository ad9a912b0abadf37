"""bench's version, in one place (the package's face re-exports it; every row names it)."""

VERSION = "0.1.0"
