"""Launchable entry point for the sanitize pipeline (Dataflow Flex Template, Airflow, Flink, Spark).

    python -m pipelines.sanitize_pipeline --input ... --output ... --label-column label \\
        [any 'sanitize run' option] [Beam pipeline options, with or without '--' before them]
    python pipelines/sanitize_pipeline.py ...          (the same, as a file: what launchers run)

A thin wrapper around ``sanitize run``: the arguments are parsed by
``sanitizer.cli`` exactly as ``sanitize run ARGS`` would parse them, and the
process exits with its status (0 published, 2 a problem you can fix, 1 an
unexpected failure).

Launchers do not speak ``sanitize``'s dialect, so the wrapper first rewrites
what they send:

- option names with underscores (``--label_column=label``: Flex Template
  parameters, Airflow ``pipeline_options``) become the dashed ``sanitize run``
  spelling (``--label-column=label``);
- switches given a value (``--overwrite=true``: Flex Template parameters are
  always ``--name=value``) become the bare switch, or nothing for a false value;
- Beam pipeline options may come anywhere, without a ``--`` separator
  (``--runner DataflowRunner --project P --region R ...``): ``sanitize run``
  accepts every option Beam knows and names any other one as a mistake.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python pipelines/sanitize_pipeline.py
    # Drop pipelines/ from the import path (its airflow/ folder must never shadow a real package) and
    # fall back to the checkout's sources when the sanitizer package is not installed.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
    sys.path.append(str(_here.parent))

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def run_options() -> dict[str, dict]:
    """``sanitize run``'s options: normalised name (underscores) -> {"flag": --dashed-name, "switch": bool}."""
    import argparse

    from sanitizer.cli import _run_parser

    parser = argparse.ArgumentParser(prog="sanitize")
    run = _run_parser(parser.add_subparsers(dest="command"))
    options: dict[str, dict] = {}
    for action in run._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest == "help":
            continue
        switch = action.nargs == 0
        for flag in longs:
            options[flag[2:].replace("-", "_")] = {"flag": longs[0], "switch": switch, "dest": action.dest}
    return options


def normalise_args(argv: list[str]) -> list[str]:
    """Rewrite launcher-style arguments into ``sanitize run`` arguments (see the module docstring)."""
    options = run_options()
    out: list[str] = []
    rest: list[str] = []
    if "--" in argv:  # everything after an explicit '--' is Beam's, untouched
        i = argv.index("--")
        argv, rest = argv[:i], argv[i:]
    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            out.append(arg)
            continue
        name, eq, value = arg[2:].partition("=")
        spec = options.get(name.replace("-", "_"))
        if spec is None:  # a Beam option (or a mistake sanitize will name)
            out.append(arg)
        elif spec["switch"]:
            if not eq or value.strip().lower() in _TRUE:
                out.append(spec["flag"])
            elif value.strip().lower() not in _FALSE:
                raise SystemExit(f"sanitize_pipeline: error: {spec['flag']} takes true or false, not {value!r}")
        else:
            out.append(spec["flag"] + (eq + value if eq else ""))
    return out + rest


def main(argv: list[str] | None = None) -> int:
    from sanitizer import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        return _help()
    return cli.main(["run", *normalise_args(argv)])


def _help() -> int:
    print(__doc__)
    from sanitizer import cli

    try:
        cli.main(["run", "--help"])
    except SystemExit as exc:  # argparse exits after printing help
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
