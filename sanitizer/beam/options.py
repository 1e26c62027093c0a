"""Beam pipeline options that name code to import: checked before Beam sees them.

Beam resolves ``--runner`` by name: a known runner name maps to one of Beam's
own classes, but any dotted name is imported and instantiated
(``--runner mymodule.Thing`` runs ``mymodule``'s top-level code and calls
``Thing()``). ``--beam_plugins`` names modules every worker imports. These
options reach a run from the command line, from launchers (Flex Template
parameters) and from the Airflow DAG's ``runner`` and ``beam_options`` params,
which whoever may trigger the DAG can set - so a run accepts only Beam's own
runners and no user-named plugins. Nothing is imported to check them.

Beam spells its options with underscores and, given ``--temp-location``, parses
nothing and drops the flag without a word. :func:`launcher_flags` normalises a
dashed spelling of a known option (``--temp-location`` -> ``--temp_location``),
refuses a name no option has (before a ``--``; after it, anything goes to Beam
as given, dashes normalised) and drops the ``--`` itself, which would otherwise
stop Beam's parser.
"""

from __future__ import annotations

import difflib

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


def known_option_names() -> set[str]:
    """Every option name Beam parses in this process (its own and SanitizeOptions', as spelt), without ``--``.

    Built the way ``PipelineOptions.get_all_options`` builds its parser, so ``--no_use_public_ips``
    counts as well as ``--use_public_ips``.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    classes: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own extension point
    return {flag[2:] for flag in parser._option_string_actions if flag.startswith("--")}


def launcher_flags(argv: list[str]) -> list[str]:
    """``argv`` as Beam should parse it: dashed names of known options normalised, unknown names refused
    (before a ``--``), the ``--`` dropped. Values are never touched."""
    argv = list(argv)
    before, after = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    known = known_option_names()
    out: list[str] = []
    for args, strict in ((before, True), (after, False)):
        for arg in args:
            if arg == "--":  # a second separator: Beam's parser would stop at it
                continue
            if not arg.startswith("--"):
                out.append(arg)
                continue
            name, eq, value = arg[2:].partition("=")
            underscored = name.replace("-", "_")
            if name in known:  # as Beam (or SanitizeOptions) spells it
                out.append(arg)
                continue
            if underscored not in known and strict:
                close = difflib.get_close_matches(underscored, sorted(k for k in known if "-" not in k), n=1)
                hint = f" (did you mean --{close[0]}?)" if close else ""
                raise ConfigError(
                    f"unknown option {'--' + name!r}{hint}; see 'sanitize run --help'. "
                    "Beam pipeline options that Beam does not know go after '--'"
                )
            # Beam's own names have no dashes; a dashed spelling would be parsed as nothing and dropped.
            out.append(f"--{underscored}{eq}{value}")
    return out
