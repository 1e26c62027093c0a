"""Great Expectations: suites and their load-time rules, row checks, the publication Checkpoint, and ``sanitize profile``. Never imports review/ or cli/."""
