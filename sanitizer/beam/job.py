"""Launch one sanitize run: options in, ``Sanitize`` applied, the job run, provenance out.

Thin on purpose. Everything the job needs - planning and claiming the output
before submission, publication after the writes - happens where ``Sanitize``
puts it (``sanitizer.beam.sanitize``, ``sanitizer.beam.publish``). This process
holds the output lock (``sanitizer.runs.output_lock``) from before the output is
claimed until the job has ended; after the runner reports the job done, it
only reads back the provenance the job published, to hand it to the caller.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from sanitizer.runs import output_lock, provenance as prov
from sanitizer.runs.claim import WRITE_ERRNOS, is_write_error, write_failure
from sanitizer.settings.config import Config
from sanitizer.errors import SanitizerError
from sanitizer.runs.guard import GuardError
from sanitizer.beam.local_runner import DIRECT_NAMES, runner_for
from sanitizer.beam.options import check_code_options, launcher_flags
from sanitizer.beam.sanitize import Sanitize, as_config
from sanitizer.beam.threads import restore_library_threads
from sanitizer.io.fs import check_output_path
from sanitizer.runs.lineage.emit import job_failed

log = logging.getLogger("sanitizer")


def pipeline_options(beam_args: list[str], options=None):
    """(PipelineOptions, runner name) from Beam arguments, or ``options`` as a launcher built them.

    Dashed spellings are read as Beam's (``--temp-location`` is ``--temp_location``: Beam itself would drop
    it); a runner or plugin that names code is refused.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, WorkerOptions

    if options is None:
        options = PipelineOptions(launcher_flags(["--", *beam_args]))
    worker = options.view_as(WorkerOptions)
    if worker.default_sdk_harness_log_level is None:
        # Worker processes (multi-processing, portable, Dataflow) log at INFO by default: too chatty for a CLI.
        worker.default_sdk_harness_log_level = "WARNING"
    check_code_options(options)  # --runner / --beam_plugins must not name code to import
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return options, standard.runner


_ERROR_RE = re.compile(
    r"(InputError|ConfigError|SanitizerError|IntegrityError|GuardError): (.+?)(?:\s\[while running|\n|$)")
_WRITE_ERROR_RE = re.compile(r"\[Errno (?:%s)\][^\n\[]*" % "|".join(str(e) for e in WRITE_ERRNOS))


def explain_pipeline_error(exc: BaseException, out: str) -> SanitizerError:
    """The user-facing error for a failed job: ours as we raised it, a write failure named, or the first line."""
    text = str(exc)
    written = _WRITE_ERROR_RE.search(text)
    if written:  # a sink or a worker could not write the output: a full disk, a quota, a read-only filesystem
        return write_failure(out, written.group(0).strip())
    match = _ERROR_RE.search(text)
    if match:
        message = match.group(2).strip()
        kind = GuardError if match.group(1) == "GuardError" else SanitizerError  # the guard's exit status is 3
        return kind(message if "nothing was published" in message else message + " (nothing was published)")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return SanitizerError(f"the pipeline failed, nothing was published: {type(exc).__name__}: {first[:500]}")


_STEP_SUFFIX = re.compile(r"\s*\[while running '[^']*'\]\s*$")


def _without_step_name(exc: SanitizerError) -> SanitizerError:
    """Our error as we raised it: Beam appends the failing step ("[while running 'Sanitize/Publish']")."""
    text = str(exc)
    stripped = _STEP_SUFFIX.sub("", text)
    return exc if stripped == text else type(exc)(stripped)


def run(config: Config | dict | str, beam_args: list[str] | None = None, options=None) -> dict[str, Any]:
    """Sanitize ``config.input`` into ``config.output``; returns the provenance dict.

    ``config`` is a Config, a mapping of config keys or a config file path
    (as for :class:`sanitizer.beam.Sanitize`). The pipeline runs with ``options``
    (a launcher's PipelineOptions) when given, else with ``beam_args``; provenance
    records ``beam_args``.

    Raises SanitizerError (with a message saying what to do) for anything the
    user can fix; in that case no manifest is written. An output that cannot be
    written (a full disk, a parent that is a file) is one of those.
    """
    config = as_config(config)
    out = (config.output or "").rstrip("/")
    try:
        return _run(config, list(beam_args or []), options)
    except OSError as exc:
        if is_write_error(exc, out):
            raise write_failure(out, exc) from None
        raise


def _run(config: Config, beam_args: list[str], options=None) -> dict[str, Any]:
    import apache_beam as beam

    beam_args = launcher_flags(["--", *beam_args])  # what provenance records: --temp-location as --temp_location
    options, runner = pipeline_options(beam_args, options)  # first: a refused option must not touch the output
    config.require_runnable()
    out = config.output.rstrip("/")
    check_output_path(out)  # before the lock creates anything there
    # The output lock, before anything in OUT is deleted or written, until the manifest is written or the run
    # failed. A runner that may outlive this process (Dataflow behind a Flex Template) gets it handed over: the
    # publish stage releases it as it writes the manifest. In-process runners leave it to this process, which
    # still reads the published provenance under it.
    lock = output_lock.acquire(out, "run")
    lock["release_in_pipeline"] = runner not in DIRECT_NAMES
    try:
        sanitize = Sanitize(config, beam_args=beam_args)
        p = beam.Pipeline(runner=runner_for(runner), options=options)  # DirectRunner: never Prism (local_runner)
        _ = p | "Sanitize" >> sanitize  # plans, checks and claims the output now: a SanitizerError leaves it untouched
        try:
            result = p.run()
            state = result.wait_until_finish()
        except SanitizerError as exc:
            exc = _without_step_name(exc)
            job_failed(sanitize.lineage_context, out, str(exc))  # FAIL, unless the publish stage sent it
            raise exc from None
        except Exception as exc:
            error = explain_pipeline_error(exc, out)
            job_failed(sanitize.lineage_context, out, str(error))
            raise error from None
        finally:
            restore_library_threads()  # in-process runners limited this process's library threads
        if state is not None and str(state) not in ("DONE", "PipelineState.DONE"):
            ended = SanitizerError(f"the pipeline ended in state {state}; nothing was published")
            job_failed(sanitize.lineage_context, out, str(ended))
            raise ended
        return read_provenance(out)
    finally:
        output_lock.release(out, lock)


def read_provenance(out: str) -> dict[str, Any]:
    """The provenance a finished job published under ``out``."""
    from apache_beam.io.filesystems import FileSystems

    path = f"{out}/{prov.PROVENANCE}"
    with FileSystems.open(path) as fh:
        return json.loads(fh.read().decode("utf-8"))
