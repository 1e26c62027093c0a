"""One typed, validated config for a run.

A config comes from a YAML or TOML file, from ``sanitize run`` flags, or both
(flags win). It is checked completely before any pipeline is built: an unknown
key, a wrong type or a value out of range raises :class:`ConfigError` naming the
key, what is allowed and what was given.

Example (YAML)::

    input: data/train-*.parquet
    ignore: ["*.txt"]            # optional; files under the input to leave out (listed as skipped)
    output: out/
    label_column: label
    id_column: image_id          # optional; otherwise ids are generated
    feature_columns: [pixels]    # optional; default: every numeric column
    columns: {Island: categorical, code: categorical}   # optional; a column's kind, instead of the inferred one
    categorical_max_levels: 1000 # a categorical vocabulary's bound; rarer values share one "other" code
    seed: 7
    sample:
      size: 100000               # rows the detectors learn from (bounded memory)
      min_per_class: 50          # every class gets at least this many, if it has them
    detectors:
      outlier:
        threshold_knn: 6.0
    policy:
      outlier: quarantine        # or "report": flag in provenance, keep the row clean
    missing_features: report     # or "quarantine": a null / NaN feature value holds its row
    media:                       # image and text columns (optional)
      image_size: 32             # images are resized to this square for their representation
      image_model: backbone.pt   # optional TorchScript or ONNX image backbone instead of the built-in CNN ...
      image_model_sha256: ...    # ... which runs only when pinned
      text_model: encoder.onnx   # optional ONNX text encoder (strings in) instead of TF-IDF, pinned likewise
      text_model_sha256: ...
      image_shapes: {pixels: [28, 28, 1]}   # an image column stored as a list of pixel values
    guard:                       # publish nothing when the run would hold more than ...
      max_quarantine_share: 0.10         # ... this share of all rows
      max_class_quarantine_share: 0.30   # ... or of any one class
    decisions: out/   # optional; review decisions to honour: a reviewed run's OUT, its review/decisions/ or a file
    baseline: {run: runs/2026-11/}   # optional; vetted data to fit on and compare with (sanitizer.settings.baseline)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

# The value checks live in sanitizer.param_checks, a leaf module the detectors import too.
from sanitizer.data.batch import MISSING_ACTIONS
from sanitizer.data.column_kinds import MAX_LEVELS, parse_declared
from sanitizer.errors import ConfigError
from sanitizer.settings.baseline import BaselineConfig
from sanitizer.io.readers import FORMAT_CHOICES
from sanitizer.param_checks import check_int, check_size

_check_int = check_int

ACTIONS = ("quarantine", "report")
COMPRESSIONS = ("zstd", "snappy", "gzip", "none")
"""Parquet codecs for the clean and quarantine shards (``compression``; zstd by default)."""


@dataclass(frozen=True)
class SampleConfig:
    size: int = 100_000
    min_per_class: int = 50

    def validate(self) -> None:
        _check_int("sample.size", self.size, low=10)
        _check_int("sample.min_per_class", self.min_per_class, low=0)


@dataclass(frozen=True)
class ScoringConfig:
    threads: int = 0
    """Threads each worker uses to score a batch; 0 means one per CPU core."""
    batch_rows: int = 65_536
    """Rows per Arrow record batch flowing through the pipeline."""

    def validate(self) -> None:
        _check_int("scoring.threads", self.threads, low=0, high=256)
        _check_int("scoring.batch_rows", self.batch_rows, low=64, high=4_000_000)


@dataclass(frozen=True)
class ValidationConfig:
    expectations: str | None = None
    """A Great Expectations suite (JSON); see sanitizer.validation.suite."""
    dataset_failure: str = "stop"
    """When a data-set-level expectation fails: "stop" (publish nothing) or "warn"."""

    def validate(self) -> None:
        if self.expectations is not None and (not isinstance(self.expectations, str) or not self.expectations):
            raise ConfigError(f"validation.expectations must be a path, got {self.expectations!r}")
        if self.dataset_failure not in ("stop", "warn"):
            raise ConfigError(f"validation.dataset_failure must be one of stop, warn, got {self.dataset_failure!r}")


@dataclass(frozen=True)
class GuardConfig:
    """The run-level guard: a run that would quarantine more than these shares publishes nothing."""

    max_quarantine_share: float = 0.10
    """Of the rows whose label is present (row checks and detectors together; sanitizer.runs.guard)."""
    max_class_quarantine_share: float = 0.30
    """Of any one class's rows (classes with at least sanitizer.runs.guard.MIN_CLASS_ROWS rows)."""

    def validate(self) -> None:
        for key in ("max_quarantine_share", "max_class_quarantine_share"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ConfigError(f"guard.{key} must be a number in (0, 1], got {value!r}")


@dataclass(frozen=True)
class MediaConfig:
    """How image and text columns become the vectors the detectors judge (sanitizer.beam.media)."""

    image_size: int = 32
    """The square, in pixels, every image is resized to for its representation."""
    text_chars: int = 2_000
    """The characters of a text its representation reads."""
    image_model: str | None = None
    """A TorchScript or ONNX image backbone (float32 (batch, 3, S, S) in [0, 1] -> (batch, dim)) instead of the
    built-in CNN; code that runs with your rights, so it needs image_model_sha256."""
    image_model_sha256: str | None = None
    text_model: str | None = None
    """An ONNX text encoder (a string tensor (batch,) -> (batch, dim)) instead of the built-in TF-IDF; pinned by
    text_model_sha256 (sanitizer.representations.text_model)."""
    text_model_sha256: str | None = None
    image_shapes: dict[str, list[int]] = field(default_factory=dict)
    """Column -> [height, width, channels] of an image column stored as a list of pixel values."""

    def validate(self) -> None:
        _check_int("media.image_size", self.image_size, low=16, high=128)
        _check_int("media.text_chars", self.text_chars, low=20, high=100_000)
        for key in ("image_model", "image_model_sha256", "text_model", "text_model_sha256"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"media.{key} must be a path or URI, got {value!r}" if key.endswith("_model")
                                  else f"media.{key} must be a sha256 (64 hex digits), got {value!r}")
        if not isinstance(self.image_shapes, dict):
            raise ConfigError(f"media.image_shapes must map a column to [height, width, channels], "
                              f"got {self.image_shapes!r}")
        for name, shape in self.image_shapes.items():
            if (not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(isinstance(v, int) and v > 0
                                                                                  for v in shape)
                    or shape[2] not in (1, 3, 4)):
                raise ConfigError(f"media.image_shapes.{name} must be [height, width, channels] with 1, 3 or 4 "
                                  f"channels, got {shape!r}")


@dataclass(frozen=True)
class Config:
    input: str | None = None
    output: str | None = None
    format: str = "auto"
    ignore: tuple[str, ...] = ()
    """Glob patterns of files under the input to leave out (listed as skipped; sanitizer.io.discover)."""
    label_column: str | None = None
    id_column: str | None = None
    feature_columns: tuple[str, ...] | None = None
    columns: dict[str, str] = field(default_factory=dict)
    """Column name -> declared kind (sanitizer.data.column_kinds.DECLARABLE); other columns' kinds are inferred."""
    categorical_max_levels: int = MAX_LEVELS
    """The bound on a categorical vocabulary: beyond it the rarest values share one "other" code."""
    seed: int = 0
    overwrite: bool = False
    compression: str = "zstd"
    """Codec of the clean and quarantine Parquet shards: zstd, snappy, gzip or none."""
    sample: SampleConfig = field(default_factory=SampleConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    detectors: dict[str, Any] = field(default_factory=dict)
    """Detector name -> its params object (see ``sanitizer.detectors``)."""
    policy: dict[str, str] = field(default_factory=dict)
    """Detector name -> "quarantine" or "report"."""
    missing_features: str = "report"
    media: MediaConfig = field(default_factory=MediaConfig)
    """A missing (null / NaN) value in a scalar feature: "report" keeps the row clean with a ``missing:COL``
    reason (the detectors judge it with the sample's median), "quarantine" holds it as ``invalid:null``."""
    guard: "GuardConfig" = field(default_factory=lambda: GuardConfig())
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    """Vetted data the detectors fit on and the new data's drift is measured against (see its module)."""
    decisions: str | None = None
    """Review decisions (a file, a review/decisions/ folder or a reviewed run's OUT; see sanitizer.review):
    released ids stay clean, confirmed stay held, while the record's content is the one reviewed."""

    def require_runnable(self) -> None:
        """Check the keys a run cannot do without."""
        for key in ("input", "output", "label_column"):
            if not getattr(self, key):
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"{key} is required: pass {flag} or set '{key}' in the config file")

    def enabled_detectors(self) -> list[str]:
        return [name for name, params in self.detectors.items() if params.enabled]

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config, JSON-serialisable (recorded in provenance)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            elif f.name == "detectors":
                value = {name: dataclasses.asdict(p) for name, p in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out


def _build_section(cls, key: str, raw: Any):
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{key} must be a mapping of settings, got {raw!r}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - allowed)
    retired = getattr(cls, "RETIRED", {})
    for name in unknown:
        if name in retired:
            raise ConfigError(f"'{key}.{name}' is no longer a setting: {retired[name]}")
    if unknown:
        raise ConfigError(
            f"unknown key '{key}.{unknown[0]}'; allowed keys in '{key}': {', '.join(sorted(allowed))}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            value = raw[f.name]
            default = getattr(cls(), f.name)
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            kwargs[f.name] = value
    obj = cls(**kwargs)
    for f in dataclasses.fields(cls):
        value, default = getattr(obj, f.name), getattr(cls(), f.name)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{key}.{f.name} must be true or false, got {value!r}")
    obj.validate()
    return obj


def build_config(raw: dict[str, Any]) -> Config:
    """Turn a plain mapping (parsed file merged with flags) into a validated Config."""
    # deferred: the detector modules load only when a config is built, so
    # ``import sanitizer`` and ``sanitize --help`` stay quick
    from sanitizer.detectors import REGISTRY

    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of keys to values, got {type(raw).__name__}")
    check_size("the config", raw)  # before anything walks it
    allowed = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}'; allowed keys: {', '.join(sorted(allowed))}")

    for key in ("input", "output", "label_column", "id_column", "decisions"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    fmt = raw.get("format", "auto")
    if fmt not in FORMAT_CHOICES:  # auto, or a registered reader (sanitizer.io.readers)
        raise ConfigError(f"format must be one of {', '.join(FORMAT_CHOICES)}, got {fmt!r}")
    ignore = raw.get("ignore") or ()
    if isinstance(ignore, str):
        ignore = [ignore]
    if not isinstance(ignore, (list, tuple)) or not all(isinstance(p, str) and p.strip() for p in ignore):
        raise ConfigError(f"ignore must be a list of glob patterns such as ['*.txt', 'logs/*'], got {ignore!r}")
    seed = raw.get("seed", 0)
    _check_int("seed", seed, low=0, high=2**32 - 1)
    overwrite = raw.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite must be true or false, got {overwrite!r}")
    missing = raw.get("missing_features", "report")
    if missing not in MISSING_ACTIONS:
        raise ConfigError(f"missing_features must be one of {', '.join(MISSING_ACTIONS)}, got {missing!r}")
    compression = raw.get("compression", "zstd")
    if compression not in COMPRESSIONS:
        raise ConfigError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")

    features = raw.get("feature_columns")
    if features is not None:
        if isinstance(features, str):
            features = [c.strip() for c in features.split(",") if c.strip()]
        if not isinstance(features, (list, tuple)) or not features or not all(
            isinstance(c, str) and c for c in features
        ):
            raise ConfigError(
                f"feature_columns must be a non-empty list of column names, got {raw.get('feature_columns')!r}"
            )
        if len(set(features)) != len(features):
            raise ConfigError(f"feature_columns lists a column twice: {list(features)!r}")
        features = tuple(features)
    label, id_col = raw.get("label_column"), raw.get("id_column")
    if label and id_col and label == id_col:
        raise ConfigError(f"label_column and id_column must differ, both are {label!r}")
    if features and label in features:
        raise ConfigError(f"feature_columns must not include the label column {label!r}")
    if features and id_col and id_col in features:
        raise ConfigError(f"feature_columns must not include the id column {id_col!r}")

    try:
        declared = parse_declared(raw.get("columns"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for role, name in (("label_column", label), ("id_column", id_col)):
        if name and name in declared:
            raise ConfigError(f"columns.{name}: {name!r} is the {role.replace('_', ' ')}; its kind is its role "
                              "(leave it out of columns)")
    max_levels = raw.get("categorical_max_levels", MAX_LEVELS)
    _check_int("categorical_max_levels", max_levels, low=2, high=1_000_000)

    raw_detectors = raw.get("detectors") or {}
    if not isinstance(raw_detectors, dict):
        raise ConfigError(f"detectors must be a mapping of detector name to settings, got {raw_detectors!r}")
    unknown = sorted(set(raw_detectors) - set(REGISTRY))
    if unknown:
        raise ConfigError(
            f"unknown detector '{unknown[0]}' under 'detectors'; available: {', '.join(sorted(REGISTRY))}"
        )
    detectors = {
        name: _build_section(cls.Params, f"detectors.{name}", raw_detectors.get(name))
        for name, cls in REGISTRY.items()
    }

    raw_policy = raw.get("policy") or {}
    if not isinstance(raw_policy, dict):
        raise ConfigError(f"policy must be a mapping of detector name to action, got {raw_policy!r}")
    policy = {name: "quarantine" for name in REGISTRY}
    for name, action in raw_policy.items():
        if name not in REGISTRY:
            raise ConfigError(f"unknown detector '{name}' under 'policy'; available: {', '.join(sorted(REGISTRY))}")
        if action not in ACTIONS:
            raise ConfigError(f"policy.{name} must be one of {', '.join(ACTIONS)}, got {action!r}")
        policy[name] = action

    return Config(
        input=raw.get("input"),
        output=raw.get("output"),
        format=fmt,
        ignore=tuple(ignore),
        label_column=label,
        id_column=id_col,
        feature_columns=features,
        columns=declared,
        categorical_max_levels=max_levels,
        seed=seed,
        overwrite=overwrite,
        compression=compression,
        sample=_build_section(SampleConfig, "sample", raw.get("sample")),
        scoring=_build_section(ScoringConfig, "scoring", raw.get("scoring")),
        validation=_build_section(ValidationConfig, "validation", raw.get("validation")),
        missing_features=missing,
        guard=_build_section(GuardConfig, "guard", raw.get("guard")),
        media=_build_section(MediaConfig, "media", raw.get("media")),
        detectors=detectors,
        policy=policy,
        decisions=raw.get("decisions"),
        baseline=_build_section(BaselineConfig, "baseline", raw.get("baseline")),
    )


def load_config_file(path: str) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml), TOML (.toml) or JSON config file into a mapping.

    Read through Beam's filesystems, so ``gs://``, ``s3://`` (with Beam's extras installed) and any
    registered scheme work as well as a local path (a Flex Template's ``config`` parameter is a gs:// URI).
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    path = os.fspath(path)
    try:
        exists = FileSystems.exists(path)
    except Exception as exc:  # an unknown scheme, a filesystem whose extra is not installed
        raise ConfigError(f"config file {path!r} cannot be read: {exc}") from None
    if not exists:
        raise ConfigError(f"config file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        data = fh.read()
    try:
        if ext == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli dependency
                import tomli as tomllib

            parsed = tomllib.loads(data.decode("utf-8"))
        elif ext in (".yaml", ".yml"):
            import yaml

            parsed = yaml.safe_load(data) or {}
        elif ext == ".json":
            parsed = json.loads(data)
        else:
            raise ConfigError(f"config file {path!r} must end in .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # parser errors carry line numbers; pass them on
        raise ConfigError(f"config file {path!r} could not be parsed: {exc}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of keys to values")
    check_size(f"config file {path!r}", parsed)  # YAML aliases: refused before anything walks them
    return parsed
