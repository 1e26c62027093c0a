"""Launchable entry point for the sanitize pipeline (Dataflow Flex Template, Airflow, Flink, Spark).

    python pipelines/sanitize_pipeline.py --input ... --output ... --label_column label \\
        [any 'sanitize run' option] [Beam pipeline options, with or without '--' before them]
    python -m pipelines.sanitize_pipeline ...          (the same, from the repository root)

The standard Beam launcher shape::

    options = PipelineOptions(launcher_flags(argv))
    opts = options.view_as(SanitizeOptions)      # sanitizer.beam.launcher

``SanitizeOptions`` declares ``sanitize run``'s options (``--input``, ``--output``,
``--label_column``, ...) as Beam pipeline options, so the runner records them with
the job (Dataflow's options panel shows them beside Beam's own). What launchers send
is understood as they send it:

- option names with underscores (``--label_column=label``: Flex Template
  parameters, Airflow ``pipeline_options``) or dashes (``--label-column``);
- switches given a value (``--overwrite=true``: Flex Template parameters are
  always ``--name=value``), or bare;
- Beam pipeline options anywhere, without a ``--`` separator (``--runner
  DataflowRunner --project P --region R ...``); a dashed spelling of one
  (``--temp-location``) is read as Beam's (``--temp_location``) instead of being
  dropped, and a name no option has is refused, naming it. After an explicit
  ``--`` anything goes to Beam.

The process exits with ``sanitize run``'s status (0 published, 2 a problem you can
fix, 1 an unexpected failure).
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


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` into Beam's options (the sanitizer's own a view of them) and run; the exit status."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from sanitizer.beam.launcher import SanitizeOptions, launcher_flags
    from sanitizer.cli.main import run_pipeline

    options = PipelineOptions(launcher_flags(list(sys.argv[1:] if argv is None else argv)))
    opts = options.view_as(SanitizeOptions)
    return run_pipeline(options, opts.to_config())


def main(argv: list[str] | None = None) -> int:
    from sanitizer.cli.main import report_errors, setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        return _help()
    setup_logging()
    return report_errors(run, argv)


def _help() -> int:
    print(__doc__)
    from sanitizer.cli import main as cli

    try:
        cli.main(["run", "--help"])
    except SystemExit as exc:  # argparse exits after printing help
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
