"""manifest.json and provenance.json.

The manifest is the only door the training job uses: it lists every clean shard
with its sha256 and row count, the schema and the run id. It is written last,
atomically (temporary name, then rename), and only after the run has proved
that input rows = clean rows + quarantined rows. No manifest, no data.
"""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from typing import Any

import pyarrow as pa

from sanitizer.io import fs as fs_util
from sanitizer.errors import IntegrityError
from sanitizer.data.layout import PROVENANCE
from sanitizer.runs.record import Accounting, Counts

MANIFEST_VERSION = 1
SCHEMA_VERSION = 1  # of manifest.json and provenance.json (sanitizer.schemas)
_SECRET_WORDS = ("token", "secret", "password", "credential", "key=")


_fs = fs_util.filesystems
sha256_of = fs_util.sha256_of  # re-exported: prov.sha256_of


def describe_shard(path: str) -> dict[str, Any]:
    """Rows, bytes and sha256 of one Parquet shard on any Beam filesystem."""
    import pyarrow.parquet as pq

    with _fs().open(path) as fh:
        rows = pq.read_metadata(fh).num_rows
    sha, size = sha256_of(path)
    return {"path": path, "rows": int(rows), "bytes": size, "sha256": sha}


def describe_shards(directory: str) -> list[dict[str, Any]]:
    """Every Parquet shard under ``directory`` with rows, bytes and sha256, sorted by path."""
    metas = _fs().match([directory.rstrip("/") + "/*.parquet"])[0].metadata_list
    return [describe_shard(m.path) for m in sorted(metas, key=lambda m: m.path)]


def relative(path: str, root: str) -> str:
    root = root.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("sanitizer", "apache-beam", "pyarrow", "numpy", "pandas", "scikit-learn", "pyyaml", "torch",
                 "faiss-cpu", "great-expectations"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def redact(args: list[str]) -> list[str]:
    """Pipeline options as recorded in provenance, with anything secret-looking hidden."""
    out = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        lowered = arg.lower()
        if any(word.rstrip("=") in lowered.split("=")[0] for word in _SECRET_WORDS):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=<redacted>")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(arg)
    return out


def schema_json(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def check_accounting(counts: Counts, clean: list[dict], quarantine: list[dict],
                     expected_rows: int | None) -> Accounting:
    """Prove input rows = clean rows + quarantined rows (the routed counts against the written shards)."""
    clean_rows, quarantined_rows = sum(s["rows"] for s in clean), sum(s["rows"] for s in quarantine)
    problems = []
    if counts.rows_in != clean_rows + quarantined_rows:
        problems.append(
            f"input rows ({counts.rows_in}) != clean rows written ({clean_rows}) + quarantined rows written "
            f"({quarantined_rows})"
        )
    if counts.clean != clean_rows:
        problems.append(f"rows routed clean ({counts.clean}) != clean rows written ({clean_rows})")
    if counts.quarantined != quarantined_rows:
        problems.append(
            f"rows routed to quarantine ({counts.quarantined}) != quarantined rows written ({quarantined_rows})"
        )
    if expected_rows is not None and counts.rows_in != expected_rows:
        problems.append(f"rows read ({counts.rows_in}) != rows in the input files' metadata ({expected_rows})")
    return Accounting(counts.rows_in, clean_rows, quarantined_rows, problems)


def write_atomic(path: str, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented JSON, whole (``fs.write_bytes_atomic``)."""
    fs_util.write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode("utf-8"))


def manifest_columns(kinds, image_size: int | None = None, media_base: str | None = None) -> list[dict[str, Any]]:
    """The manifest's ``columns``: every input column's name and kind (``sanitizer.data.column_kinds``), with
    the whole vocabulary of a categorical or boolean column (``codes``: every value -> its code, and the
    ``other``, ``unseen`` and ``missing`` codes, as provenance records them) and the range of a date column,
    so a training job and a serving job encode values alike. A judged image column adds its ``layout``
    (bytes, struct, path, pixels), the ``size`` the run decoded it to (``image_size``), a pixel list's
    ``shape`` and, for paths, the folder relative paths were read from (``media_base``): what the training
    loader decodes it by."""
    out = []
    for k in kinds:
        entry: dict[str, Any] = {"name": k.name, "kind": k.kind}
        if k.kind == "image" and k.extra.get("layout"):
            layout = k.extra["layout"]
            entry["layout"] = layout
            if image_size is not None:
                entry["size"] = int(image_size)
            if k.extra.get("shape"):
                entry["shape"] = [int(v) for v in k.extra["shape"]]
            if media_base and layout in ("path", "struct"):
                entry["base"] = media_base
        if k.vocabulary is not None:
            vocab = {key: value for key, value in k.vocabulary.items() if key != "levels"}
            vocab.setdefault("missing_code", vocab["unseen_code"] + 1)
            vocab["codes"] = dict(k.codes) if k.codes is not None else {
                level["value"]: code for code, level in enumerate(k.vocabulary.get("levels", []))}
            entry["vocabulary"] = vocab
        if k.range is not None:
            entry["range"] = dict(k.range)
        out.append(entry)
    return out


def build_manifest(run_id: str, out: str, schema: pa.Schema, clean: list[dict], quarantine: list[dict],
                   id_column: str, label_column: str, feature_columns: list[str],
                   provenance_sha256: str, compression: str = "none",
                   columns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest; ``columns`` (:func:`manifest_columns`) is left out when the plan recorded no kinds."""
    def shard_list(shards):
        return [
            {"path": relative(s["path"], out), "rows": s["rows"], "bytes": s["bytes"], "sha256": s["sha256"]}
            for s in shards
        ]

    return {
        "schema_version": SCHEMA_VERSION,  # sanitizer/schemas/manifest-1.schema.json
        "manifest_version": MANIFEST_VERSION,
        "run_id": run_id,
        "format": "parquet",
        "compression": compression,
        "schema": schema_json(schema),
        "id_column": id_column,
        "label_column": label_column,
        "feature_columns": feature_columns,
        "clean": {"rows": sum(s["rows"] for s in clean), "shards": shard_list(clean)},
        "quarantine": {"rows": sum(s["rows"] for s in quarantine), "shards": shard_list(quarantine)},
        "provenance": {"path": PROVENANCE, "sha256": provenance_sha256},
    } | ({"columns": columns} if columns else {})


def integrity_error(accounting: Accounting) -> IntegrityError:
    return IntegrityError(
        "the run could not prove every record is accounted for, so nothing was published (no manifest): "
        + "; ".join(accounting.problems)
    )


def argv_string() -> str:
    return " ".join(sys.argv)
