"""The ``sanitize`` command.

    sanitize run --input PATH_OR_GLOB --output DIR --label-column COL [options] [-- BEAM OPTIONS...]
    sanitize demo [--workdir DIR]
    sanitize review OUT list|show|release|confirm ...   (see sanitizer/cli/review.py)
    sanitize publish OUT

Beam pipeline options go after ``--`` (or, when Beam knows them, anywhere), so
``-- --runner DataflowRunner --project P --region R --temp_location gs://...``
runs the same job on Dataflow. Without a runner it runs on the DirectRunner.

Exit status: 0 success, 2 a problem with the input or config (the message says
what to do; nothing was published), 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sanitizer.data.column_kinds import parse_declared
from sanitizer.errors import ConfigError, SanitizerError
from sanitizer.io.readers import FORMAT_CHOICES
from sanitizer.cli.summary import summary_lines
from sanitizer.cli.terminal import printable
from sanitizer.runs import progress
from sanitizer.settings.config import build_config
from sanitizer.settings.options import RUN_OPTIONS, add_run_arguments
from sanitizer.cli.review import add_parsers as add_review_parsers, run_publish, run_review
from sanitizer.validation.suite_rules import SEVERITIES


def _run_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="sanitize a data set: quarantine suspect rows, publish clean shards with a manifest",
        description="Sanitize training data. Beam pipeline options go after '--' (or, when Beam knows them, "
                    "anywhere; --temp-location is read as --temp_location).",
    )
    add_run_arguments(p)
    return p


def split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(sanitize args, Beam args): everything after '--' belongs to Beam."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _cmd_run(argv: list[str]) -> int:
    # deferred here and below: apache_beam loads only when a command runs a pipeline (``sanitize --help`` stays quick)
    from apache_beam.options.pipeline_options import PipelineOptions

    from sanitizer.beam.launcher import SanitizeOptions, launcher_flags

    own, after = split_beam_args(argv)
    parser = argparse.ArgumentParser(prog="sanitize")
    sub = parser.add_subparsers(dest="command")
    _run_parser(sub)
    args, unknown = parser.parse_known_args(["run"] + own)
    beam_args = launcher_flags(unknown + (["--", *after] if after else []))
    options = PipelineOptions(beam_args)
    opts = options.view_as(SanitizeOptions)
    for name in RUN_OPTIONS:  # the run's own options ride along with Beam's (Dataflow's options panel)
        setattr(opts, name, getattr(args, name))
    return run_pipeline(options)


def run_pipeline(options, config=None) -> int:
    """Run the sanitizer on ``options`` (Beam's, with a SanitizeOptions view) and print the summary.

    What ``sanitize run`` and the launcher (``pipelines/sanitize_pipeline.py``) both end in.
    """
    from sanitizer.beam.launcher import SanitizeOptions
    from sanitizer.beam.job import run

    opts = options.view_as(SanitizeOptions)
    config = opts.to_config() if config is None else config
    config.require_runnable()
    if not opts.quiet and sys.stderr.isatty():
        os.environ[progress.ENV] = "1"  # inherited by in-process and multi-processing workers
    if opts.verbose:
        logging.getLogger("apache_beam").setLevel(logging.INFO)
    elif not sys.stderr.isatty() and not opts.quiet:
        # Launchers parse the runner's INFO lines: Airflow's Beam operator waits for Dataflow's
        # "Created job with id" to link and cancel the job.
        logging.getLogger("apache_beam.runners").setLevel(logging.INFO)
    try:
        provenance = run(config, opts.beam_args(), options=options)
    finally:
        progress.finish()
    if not opts.quiet:
        print("\n".join(summary_lines(provenance, config.output)))
    return 0


def _quiet_beam_noise(record: logging.LogRecord) -> bool:
    """Drop Beam's import-time notice about optional Google Cloud clients (irrelevant off GCP)."""
    return "apitools not found" not in record.getMessage()


def _quiet_our_errors_in_beam(record: logging.LogRecord) -> bool:
    """Beam logs a failing stage's exception with its traceback; ours are printed once, as a message, instead."""
    if not record.name.startswith("apache_beam") or not record.exc_info:
        return True
    exc = record.exc_info[1]
    for _ in range(10):
        if exc is None:
            return True
        if isinstance(exc, SanitizerError):
            return False
        exc = exc.__cause__ or exc.__context__
    return True


def _quiet_library_info(record: logging.LogRecord) -> bool:
    """Great Expectations announces every ephemeral context at INFO; keep its warnings only."""
    return not (record.name.startswith("great_expectations") and record.levelno < logging.WARNING)


def setup_logging() -> None:
    """WARNING and up, without the noise Beam and Great Expectations make (see the filters above)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addFilter(_quiet_beam_noise)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_library_info)
        handler.addFilter(_quiet_our_errors_in_beam)


def report_errors(fn, *args) -> int:
    """``fn(*args)``'s exit status; a SanitizerError is printed as one message and exits 2 (3 when the run-level
    guard withheld publication: sanitizer.runs.guard)."""
    try:
        return fn(*args)
    except SanitizerError as exc:
        print("sanitize: error: " + "\n".join(printable(line) for line in str(exc).splitlines()), file=sys.stderr)
        return getattr(exc, "exit_status", 2)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    parser = argparse.ArgumentParser(
        prog="sanitize", description="Defend ML training data against poisoning (Apache Beam pipeline)."
    )
    sub = parser.add_subparsers(dest="command")
    _run_parser(sub)
    prof = sub.add_parser("profile", help="infer a Great Expectations suite from data you trust")
    prof.add_argument("--input", required=True)
    prof.add_argument("--label-column", dest="label_column", required=True)
    prof.add_argument("--id-column", dest="id_column")
    prof.add_argument("--feature-columns", dest="feature_columns")
    prof.add_argument("--format", choices=FORMAT_CHOICES)
    prof.add_argument("--ignore", action="append", metavar="PATTERN",
                      help="leave out the input files matching this glob (as for run); repeatable")
    prof.add_argument("--output", required=True, help="where to write the suite, e.g. validations/train.json")
    prof.add_argument("--margin", type=float, default=0.1,
                      help="widen numeric and date ranges by this share of their span (default 0.1)")
    prof.add_argument("--column-kind", dest="column_kind", action="append", metavar="NAME=KIND",
                      help="a column's kind instead of the inferred one (as for run); repeatable, or comma-separated")
    prof.add_argument("--value-set-severity", dest="value_set_severity", choices=SEVERITIES, default="critical",
                      help="severity of the categorical value sets (default critical: a row with a value never "
                           "seen is quarantined; warning or info: it is reported and kept)")
    prof.add_argument("--date-range-severity", dest="date_range_severity", choices=SEVERITIES, default="critical",
                      help="severity of the date ranges (default critical; warning or info: reported and kept)")

    add_review_parsers(sub)
    demo = sub.add_parser("demo", help="plant poison in scikit-learn's digits and sanitize it")
    demo.add_argument("--expectations", help="a suite to validate the demo data with")
    demo.add_argument("--workdir", default="demo", help="where the demo input and outputs go (default: demo)")
    demo.add_argument("--seed", type=int, default=0)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    return report_errors(_dispatch, parser, argv)


def _dispatch(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    if argv[0] == "run":
        return _cmd_run(argv[1:])
    own, beam_args = split_beam_args(argv)
    args = parser.parse_args(own)
    if args.command == "demo":
        from sanitizer.cli.demo import main as demo_main  # deferred: apache_beam

        return demo_main(args.workdir, args.seed, beam_args, args.expectations)
    if args.command in ("review", "publish"):
        return run_review(args) if args.command == "review" else run_publish(args)
    if args.command == "profile":
        from sanitizer.beam.plan import make_plan  # deferred: planning and the detector modules
        from sanitizer.validation.profile import profile

        raw = {k: getattr(args, k) for k in ("input", "label_column", "id_column", "feature_columns", "format")
               if getattr(args, k) is not None}
        raw["output"] = args.output
        if args.ignore:
            raw["ignore"] = [p.strip() for value in args.ignore for p in value.split(",") if p.strip()]
        if args.column_kind:
            try:
                raw["columns"] = parse_declared([p.strip() for value in args.column_kind for p in value.split(",")
                                                 if p.strip()], "--column-kind")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        config = build_config(raw)
        suite = profile(config, make_plan(config), args.output, args.margin,
                        value_set_severity=args.value_set_severity, date_range_severity=args.date_range_severity)
        print(f"wrote {args.output}: {len(suite['expectations'])} expectations from "
              f"{suite['meta']['sanitizer']['rows']:,} rows")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
