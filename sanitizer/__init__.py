"""sanitizer: defend ML training data against poisoning.

A batch-native Apache Beam stage that reads raw shards, fits detectors on a
bounded sample, scores every record, quarantines suspects with machine-readable
reasons and publishes clean shards behind a manifest.

The public API is small::

    from sanitizer import build_config, run

    config = build_config({"input": "data/*.parquet", "output": "out/", "label_column": "label"})
    provenance = run(config)                 # DirectRunner
    provenance = run(config, ["--runner=DataflowRunner", "--project=...", ...])

Inside your own Beam pipeline, the same job is one PTransform that publishes by itself::

    from sanitizer.beam import Sanitize

    manifest_uri = p | Sanitize(input="data/*.parquet", output="out/", label_column="label")
"""

from sanitizer.settings.config import Config, build_config, load_config_file
from sanitizer.errors import ConfigError, InputError, IntegrityError, SanitizerError

from sanitizer.version import __version__


def run(config: Config | dict | str, beam_args: list[str] | None = None) -> dict:
    """Sanitize ``config.input`` into ``config.output``; returns provenance (see sanitizer.beam.job.run)."""
    from sanitizer.beam.job import run as _run  # deferred: ``import sanitizer`` does not load apache_beam

    return _run(config, beam_args)


__all__ = [
    "Config",
    "ConfigError",
    "InputError",
    "IntegrityError",
    "SanitizerError",
    "__version__",
    "build_config",
    "load_config_file",
    "run",
]
