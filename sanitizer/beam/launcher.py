"""The sanitizer's launcher options as Beam pipeline options (``SanitizeOptions``).

A launcher (``pipelines/sanitize_pipeline.py``: a Flex Template, Airflow's Beam
operator, ``spark-submit``-style wrappers) follows Beam's convention::

    options = PipelineOptions(launcher_flags(argv))
    opts = options.view_as(SanitizeOptions)      # --input, --output, --label_column, ...

so the run's own options are pipeline options too: the runner records them with
the job (Dataflow shows them in the job's options panel) beside Beam's.
``sanitize run`` declares the very same options (``sanitizer.settings.options``, Beam-free).

``launcher_flags`` (``sanitizer.beam.options``) reads ``--temp-location`` as
``--temp_location``, refuses a name no option has and drops a ``--`` separator:
Beam itself would drop a dashed name without a word.

Not imported by ``sanitizer.beam.Sanitize``: Beam parses every PipelineOptions
subclass defined in a process together, so a user pipeline with its own
``--input`` option must not meet this class unless it launches a run itself.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from sanitizer.beam.options import known_option_names, launcher_flags
from sanitizer.settings.options import RUN_OPTIONS, add_run_arguments, config_from_args, true_or_false

__all__ = ["RUN_OPTIONS", "SanitizeOptions", "add_run_arguments", "config_from_args", "known_option_names",
           "launcher_flags", "true_or_false"]

class SanitizeOptions(PipelineOptions):
    """The sanitizer's own options (those of ``sanitize run``), as Beam pipeline options."""

    @classmethod
    def _add_argparse_args(cls, parser) -> None:
        add_run_arguments(parser, short_flags=False)

    def to_config(self):
        """The validated Config these options (and the --config file they name) describe."""
        return config_from_args(self)

    def beam_args(self) -> list[str]:
        """The flags these options were parsed from, less the sanitizer's own: what provenance records."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        add_run_arguments(parser, short_flags=False)
        _, rest = parser.parse_known_args(list(self._flags))
        return rest
