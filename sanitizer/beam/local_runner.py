"""The runner ``sanitize run`` uses for ``--runner=DirectRunner`` (the default): Beam's FnApiRunner, directly.

Beam's DirectRunner (2.6x and later) first tries the PrismRunner, which
downloads a Go binary from GitHub when the job starts, and falls back to the
FnApiRunner only when that fails. So on a machine with network access the
default run would fetch and execute code at run time and run on an engine
the tests never exercise; offline it wastes a connection attempt. A batch
pipeline like this one (no streaming sources, no TestStream) always takes
the FnApiRunner path in the end, so this runner goes there at once, with the
same options (``--direct_running_mode``, ``--direct_num_workers``) and the
same provision info the DirectRunner would give it.
"""

from __future__ import annotations

from apache_beam.runners.runner import PipelineRunner

DIRECT_NAMES = ("DirectRunner", "direct", "SwitchingDirectRunner")


class LocalRunner(PipelineRunner):
    """FnApiRunner with the DirectRunner's provision info; never PrismRunner."""

    def run_pipeline(self, pipeline, options):
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=info).run_pipeline(pipeline, options)


def runner_for(name: str):
    """The runner object for a ``--runner`` name: LocalRunner for the DirectRunner, else None (Beam's own)."""
    return LocalRunner() if name in DIRECT_NAMES else None
