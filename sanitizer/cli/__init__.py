"""The ``sanitize`` command and its subcommands, thin: argument parsing and printing over the rest of the package (``main`` is the entry point)."""
