"""``sanitize run``'s options, declared once: the ``sanitize`` command and the Beam launcher both use them.

Beam-free (the ``sanitize`` command's start-up stays light); ``sanitizer.beam.launcher``
makes the same options a Beam ``PipelineOptions`` subclass. Every option takes
both spellings, ``--label-column`` and ``--label_column`` (launchers send the
latter), and a switch takes ``--overwrite``, ``--overwrite=true`` or
``--overwrite=false`` (Flex Template parameters are always ``--name=value``).
"""

from __future__ import annotations

import argparse
from typing import Any
from sanitizer.io.readers import FORMAT_CHOICES, format_titles
from sanitizer.data.column_kinds import parse_declared
from sanitizer.errors import ConfigError
from sanitizer.settings.config import build_config, load_config_file

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def true_or_false(value: str) -> bool:
    """A switch's value as launchers send it (``--overwrite=true``); a bare ``--overwrite`` is true."""
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"takes true or false, not {value!r}")


true_or_false.__name__ = "true or false"

# name (underscores) -> add_argument keyword arguments; "switch" marks a true/false option.
RUN_OPTIONS: dict[str, dict[str, Any]] = {
    "input": {"help": f"a file, a directory of shards or a glob ({format_titles()})"},
    "output": {"help": "output folder (local, gs://, s3://...)"},
    "label_column": {"help": "the column holding each record's label"},
    "id_column": {"help": "a unique record id column (default: generated ids)"},
    "feature_columns": {"help": "comma-separated feature columns (default: every numeric column but label and id)"},
    "column_kind": {"action": "append", "metavar": "NAME=KIND",
                    "help": "a column's kind instead of the inferred one: numeric, boolean, categorical, date, text, "
                            "image, id-like or embedding (e.g. zip=categorical); repeatable, or comma-separated"},
    "format": {"choices": FORMAT_CHOICES, "help": "input format (default: by extension)"},
    "ignore": {"action": "append", "metavar": "PATTERN",
               "help": "leave out the input files matching this glob (their name, path under the input or a "
                       "folder on it; listed as skipped); repeatable, or comma-separated"},
    "config": {"help": "a YAML, TOML or JSON config file (local, gs://, s3://...); flags override it"},
    "seed": {"type": int, "help": "seed for sampling and cross-fitting folds (0 to 2**32-1)"},
    "sample_size": {"type": int, "help": "rows the detectors learn from"},
    "expectations": {"help": "a Great Expectations suite (JSON) to validate rows and the data set"},
    "embedding_model": {"help": "TorchScript backbone for the feature_collision detector (path or URI); it is "
                                "code, run with your rights, so it needs --embedding-model-sha256"},
    "embedding_model_sha256": {"help": "the sha256 the embedding model's file must have (pins the code you "
                                       "trust; a model without it is refused and its sha256 printed)"},
    "image_size": {"type": int, "help": "the square (pixels) images are resized to for their representation "
                                        "(default 32)"},
    "image_model": {"help": "TorchScript or ONNX image backbone for image columns instead of the built-in CNN (path "
                            "or URI): float32 (batch, 3, S, S) in [0, 1] -> (batch, dim); code, so it needs "
                            "--image-model-sha256"},
    "image_model_sha256": {"help": "the sha256 the image model's file must have"},
    "text_model": {"help": "ONNX text encoder for text columns instead of the built-in TF-IDF (path or URI): a string "
                           "tensor (batch,) -> float (batch, dim); it needs --text-model-sha256"},
    "text_model_sha256": {"help": "the sha256 the text model's file must have"},
    "holdout": {"help": "an evaluation set (file, folder or glob; any supported format): training records equal to "
                        "one of its records are quarantined as leak, with its id"},
    "baseline": {"help": "a published run (its OUT folder or manifest.json) whose verified clean rows the detectors "
                         "fit on; the new data is scored against them and its drift from them measured"},
    "baseline_sha256": {"help": "the sha256 the baseline run's manifest.json must have (the one that was reviewed)"},
    "baseline_data": {"help": "data you trust (file, folder or glob; any supported format) to fit on and compare "
                              "with, instead of --baseline"},
    "missing_features": {"choices": ["report", "quarantine"],
                         "help": "a missing (null / NaN) feature value: report keeps the row clean and judges it with "
                                 "the sample's median (default); quarantine holds the row"},
    "max_quarantine_share": {"type": float, "help": "publish nothing (exit 3) when the run would quarantine more than "
                                                    "this share of the labelled rows (default 0.10)"},
    "max_class_quarantine_share": {"type": float, "help": "... or more than this share of any class's rows "
                                                          "(default 0.30)"},
    "decisions": {"help": "review decisions: a reviewed run's OUT folder, its review/decisions/ folder or one "
                          "decisions file (JSON Lines): released records stay clean, confirmed ones stay "
                          "quarantined, while their content is the one reviewed"},
    "overwrite": {"switch": True, "default": None,
                  "help": "replace an earlier sanitize run in --output (only files that run wrote; anything else "
                          "is refused); --overwrite=true|false also works"},
    "quiet": {"switch": True, "short": "-q", "default": False, "help": "print only errors"},
    "verbose": {"switch": True, "short": "-v", "default": False,
                "help": "log Beam at INFO (whenever stderr is not a terminal, Beam's runners log at INFO anyway, so "
                        "orchestrators such as Airflow see the runner's job id)"},
}


def add_run_arguments(parser: argparse.ArgumentParser, short_flags: bool = True) -> None:
    """Declare ``sanitize run``'s options on ``parser``: ``--label-column`` and ``--label_column`` alike."""
    for name, spec in RUN_OPTIONS.items():
        kwargs = {k: v for k, v in spec.items() if k not in ("switch", "short")}
        flags = [f"--{name.replace('_', '-')}"]
        if "_" in name:
            flags.append(f"--{name}")
        if short_flags and spec.get("short"):
            flags.insert(0, spec["short"])
        if spec.get("switch"):
            kwargs.update(nargs="?", const=True, type=true_or_false, metavar="true|false")
        parser.add_argument(*flags, dest=name, **kwargs)



def config_from_args(args: Any):
    """A Config from parsed run options (an argparse Namespace or a SanitizeOptions view): file, then flags."""
    raw: dict[str, Any] = load_config_file(args.config) if args.config else {}
    for key in ("input", "output", "label_column", "id_column", "feature_columns", "format", "seed", "overwrite",
                "decisions", "missing_features"):
        value = getattr(args, key, None)
        if value is not None:
            raw[key] = value
    for key in ("max_quarantine_share", "max_class_quarantine_share"):
        if getattr(args, key, None) is not None:
            raw["guard"] = dict(raw.get("guard") or {}, **{key: getattr(args, key)})
    if getattr(args, "ignore", None):
        raw["ignore"] = [p.strip() for value in args.ignore for p in value.split(",") if p.strip()]
    if getattr(args, "column_kind", None):
        pairs = [p.strip() for value in args.column_kind for p in value.split(",") if p.strip()]
        try:
            flags = parse_declared(pairs, "--column-kind")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        file_kinds = raw.get("columns") if isinstance(raw.get("columns"), dict) else {}
        raw["columns"] = dict(file_kinds, **flags)  # flags win
    if args.sample_size is not None:
        raw["sample"] = dict(raw.get("sample") or {}, size=args.sample_size)
    if getattr(args, "expectations", None):
        raw["validation"] = dict(raw.get("validation") or {}, expectations=args.expectations)
    for key in ("image_size", "image_model", "image_model_sha256", "text_model", "text_model_sha256"):
        if getattr(args, key, None) is not None:
            raw["media"] = dict(raw.get("media") or {}, **{key: getattr(args, key)})
    for key in ("embedding_model", "embedding_model_sha256"):
        if getattr(args, key, None):
            detectors = dict(raw.get("detectors") or {})
            detectors["feature_collision"] = dict(detectors.get("feature_collision") or {},
                                                  **{key: getattr(args, key)})
            raw["detectors"] = detectors
    for key, name in (("baseline", "run"), ("baseline_sha256", "run_sha256"), ("baseline_data", "data")):
        if getattr(args, key, None):
            raw["baseline"] = dict(raw.get("baseline") or {}, **{name: getattr(args, key)})
    if getattr(args, "holdout", None):
        detectors = dict(raw.get("detectors") or {})
        detectors["duplicates"] = dict(detectors.get("duplicates") or {}, holdout=args.holdout)
        raw["detectors"] = detectors
    return build_config(raw)
