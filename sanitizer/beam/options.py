"""Beam pipeline options that name code to import: checked before Beam sees them.

Beam resolves ``--runner`` by name: a known runner name maps to one of Beam's
own classes, but any dotted name is imported and instantiated
(``--runner mymodule.Thing`` runs ``mymodule``'s top-level code and calls
``Thing()``). ``--beam_plugins`` names modules every worker imports. These
options reach a run from the command line, from launchers (Flex Template
parameters) and from the Airflow DAG's ``runner`` and ``beam_options`` params,
which whoever may trigger the DAG can set - so a run accepts only Beam's own
runners and no user-named plugins. Nothing is imported to check them.
"""

from __future__ import annotations

from sanitizer.errors import ConfigError


def known_runners() -> dict[str, str]:
    """Lower-case short name (``directrunner``) -> full import path, for Beam's own runners only."""
    from apache_beam.options.pipeline_options import StandardOptions

    return {path.rsplit(".", 1)[-1].lower(): path for path in StandardOptions.ALL_KNOWN_RUNNERS}


def resolve_runner(name: str) -> str:
    """The import path Beam would use for ``--runner name``, if it is one of Beam's own runners.

    Mirrors ``apache_beam.runners.runner.create_runner``'s lookup (case-insensitive, ``Runner``
    suffix optional, or the full path); raises ConfigError for anything else, naming the fix.
    """
    known = known_runners()
    paths = set(known.values())
    if isinstance(name, str):
        lowered = name.strip().lower()
        resolved = known.get(lowered) or known.get(lowered + "runner") or name.strip()
        if resolved in paths:
            return resolved
    names = ", ".join(sorted(path.rsplit(".", 1)[-1] for path in paths))
    raise ConfigError(
        f"--runner {name!r} is not one of Beam's runners ({names}); Beam would import and instantiate any "
        "other name, which runs code. Pass one of them, e.g. --runner DataflowRunner"
    )


def check_code_options(options) -> None:
    """Raise ConfigError when Beam pipeline options name code to import (see the module docstring)."""
    from apache_beam.options.pipeline_options import SetupOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner
    if runner:
        resolve_runner(runner)
    plugins = options.view_as(SetupOptions).beam_plugins
    if plugins:
        raise ConfigError(
            f"--beam_plugins {plugins!r}: Beam imports these modules by name on every worker, which runs code, "
            "and a sanitize run needs none; drop the option (Beam adds its own file-system plugins itself)"
        )
