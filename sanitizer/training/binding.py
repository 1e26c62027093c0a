"""What :func:`sanitizer.training.load_manifest` checks before it looks at a shard: every field it reads has
the type it must have, and ``provenance.json`` is the one the manifest was published with.

A damaged or edited manifest (a ``rows`` that is a string, a ``bytes`` of ``-1``, a shard list that is an
object...) raises :class:`ManifestError` naming the field, never a ``ValueError``/``TypeError`` from deep
inside. The manifest names the sha256 of the run's ``provenance.json``; the loader hashes that file and
refuses a mismatch, and checks that the provenance describes this manifest (same run id, status
``succeeded``, the same clean and quarantine shards), so the data, the record of how it was made and the input it names
all come from one run.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sanitizer.data.layout import PROVENANCE
from sanitizer.training.shards import ManifestError, _exists, _join, _read_bytes

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _damaged(where: str, field: str, value: Any, want: str) -> ManifestError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ManifestError(f"manifest {where} field {field} is {shown}, not {want}; the manifest is damaged or was edited")


def _check_shard_list(where: str, part: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _damaged(where, part, value, "an object with rows and shards")
    if not isinstance(value.get("shards"), list):
        raise _damaged(where, f"{part}.shards", value.get("shards"), "a list")
    for key in ("rows", "shard_rows", "released_rows"):
        if key in value and not _count(value[key]):
            raise _damaged(where, f"{part}.{key}", value[key], "a whole number >= 0")
    for i, entry in enumerate(value["shards"]):
        field = f"{part}.shards[{i}]"
        if not isinstance(entry, dict):
            raise _damaged(where, field, entry, "an object")
        if not isinstance(entry.get("path"), str):
            raise _damaged(where, f"{field}.path", entry.get("path"), "a path")
        for key in ("rows", "bytes"):
            if not _count(entry.get(key)):
                raise _damaged(where, f"{field}.{key}", entry.get(key), "a whole number >= 0")
        if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
            raise _damaged(where, f"{field}.sha256", entry.get("sha256"), "a sha256 (64 lower-case hex digits)")


def check_fields(manifest: dict, where: str) -> None:
    """Every field the loader reads has its type; ManifestError naming the first that does not."""
    for key in ("run_id", "id_column", "label_column"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            raise _damaged(where, key, manifest.get(key), "a non-empty string")
    if not isinstance(manifest.get("compression", "none"), str):
        raise _damaged(where, "compression", manifest.get("compression"), "a string")
    features = manifest.get("feature_columns")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise _damaged(where, "feature_columns", features, "a list of column names")
    schema = manifest.get("schema")
    if not isinstance(schema, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str)
                                               for f in schema):
        raise _damaged(where, "schema", schema, "a list of {name, type, nullable}")
    _check_shard_list(where, "clean", manifest.get("clean"))
    _check_shard_list(where, "quarantine", manifest.get("quarantine"))
    prov = manifest.get("provenance")
    if not isinstance(prov, dict):
        raise _damaged(where, "provenance", prov, "an object with path and sha256")
    if prov.get("path") != PROVENANCE:
        raise _damaged(where, "provenance.path", prov.get("path"), repr(PROVENANCE))
    if not isinstance(prov.get("sha256"), str) or not _SHA256.fullmatch(prov["sha256"]):
        raise _damaged(where, "provenance.sha256", prov.get("sha256"), "a sha256 (64 lower-case hex digits)")
    publication = manifest.get("publication")
    if publication is not None and not (isinstance(publication, dict)
                                        and isinstance(publication.get("source_run_id"), str)):
        raise _damaged(where, "publication", publication, "an object naming its source_run_id")
    if "columns" in manifest:  # absent in manifests written before column kinds
        _check_columns(where, manifest["columns"])


def _check_columns(where: str, columns: Any) -> None:
    """``columns``: a list of {name, kind}; a vocabulary whose codes are whole numbers that do not collide
    (values 0..size-1, the other code, then unseen and missing, all distinct); a range of two strings."""
    if not isinstance(columns, list):
        raise _damaged(where, "columns", columns, "a list of {name, kind}")
    seen: set[str] = set()
    for i, entry in enumerate(columns):
        field = f"columns[{i}]"
        if not isinstance(entry, dict):
            raise _damaged(where, field, entry, "an object with name and kind")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name in seen:
            raise _damaged(where, f"{field}.name", name, "a column name (non-empty, not repeated)")
        seen.add(name)
        if not isinstance(entry.get("kind"), str) or not entry["kind"]:
            raise _damaged(where, f"{field}.kind", entry.get("kind"), "a kind (categorical, date, numeric, ...)")
        if "vocabulary" in entry:
            _check_vocabulary(where, f"{field}.vocabulary", entry["vocabulary"])
        elif entry["kind"] == "categorical":
            raise _damaged(where, f"{field}.vocabulary", None, "the vocabulary of categorical column " + repr(name))
        if entry["kind"] == "image":
            _check_image(where, field, entry)
        if "range" in entry:
            span = entry["range"]
            if not isinstance(span, dict) or not all(isinstance(span.get(k), str) for k in ("min", "max")):
                raise _damaged(where, f"{field}.range", span, "an object with min and max (ISO 8601 text)")


def _check_image(where: str, field: str, entry: dict) -> None:
    """An image column's decoding: a known layout, a positive size, a pixel list's (H, W, C), a folder."""
    if "layout" in entry and entry["layout"] not in ("bytes", "struct", "path", "pixels"):
        raise _damaged(where, f"{field}.layout", entry["layout"], "one of bytes, struct, path, pixels")
    if "size" in entry and not (_count(entry["size"]) and entry["size"] > 0):
        raise _damaged(where, f"{field}.size", entry["size"], "a whole number >= 1")
    shape = entry.get("shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3
                                  and all(_count(v) and v > 0 for v in shape)):
        raise _damaged(where, f"{field}.shape", shape, "[height, width, channels]")
    if "base" in entry and not (isinstance(entry["base"], str) and entry["base"]):
        raise _damaged(where, f"{field}.base", entry["base"], "a folder")


def _check_vocabulary(where: str, field: str, vocab: Any) -> None:
    if not isinstance(vocab, dict):
        raise _damaged(where, field, vocab, "an object with codes, size, unseen_code and missing_code")
    for key in ("size", "unseen_code", "missing_code"):
        if not _count(vocab.get(key)):
            raise _damaged(where, f"{field}.{key}", vocab.get(key), "a whole number >= 0")
    other = vocab.get("other")
    if other is not None and not (isinstance(other, dict) and _count(other.get("code"))):
        raise _damaged(where, f"{field}.other", other, "an object with a code (a whole number >= 0)")
    size, unseen, missing = vocab["size"], vocab["unseen_code"], vocab["missing_code"]
    other_code = other["code"] if other is not None else None
    special = [c for c in (other_code, unseen, missing) if c is not None]
    if len(set(special)) != len(special) or any(c < size for c in special):
        raise _damaged(where, field, {"size": size, "other": other_code, "unseen_code": unseen,
                                      "missing_code": missing},
                       "codes that do not collide (other, unseen and missing each >= size and distinct)")
    codes = vocab.get("codes")
    if not isinstance(codes, dict):
        raise _damaged(where, f"{field}.codes", codes, "an object of value -> code")
    used: set[int] = set()
    for value, code in codes.items():
        if not _count(code) or not (code < size or code == other_code):
            raise _damaged(where, f"{field}.codes[{value!r}]", code,
                           f"a code below size {size}" + (f" or the other code {other_code}" if other_code is not None
                                                          else ""))
        if code < size and code in used:
            raise _damaged(where, f"{field}.codes[{value!r}]", code, "a code no other value has")
        used.add(code)
    if len(used - ({other_code} if other_code is not None else set())) != size:
        raise _damaged(where, f"{field}.size", size, f"the number of values with a code of their own "
                                                     f"({len(used - {other_code})})")


def check_provenance(out: str, manifest: dict, where: str) -> dict:
    """``OUT/provenance.json`` is the one the manifest names (sha256), of the same run, which succeeded and
    wrote the clean and quarantine shards the manifest lists; the parsed provenance, or ManifestError."""
    expected = manifest["provenance"]["sha256"]
    path = _join(out, PROVENANCE)
    if not _exists(path):
        raise ManifestError(f"manifest {where} names {PROVENANCE} (sha256 {expected}), but {path} is missing; "
                            "without the record of how the data was made none of it is handed out")
    raw = _read_bytes(path)
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise ManifestError(
            f"{path} is not the provenance manifest {where} was published with: its sha256 is {actual}, the "
            f"manifest says {expected}. It was replaced or edited (or another run wrote it); re-run the sanitizer"
        )
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); re-run the sanitizer") from None
    if not isinstance(record, dict):
        raise ManifestError(f"{path} is not a JSON object; re-run the sanitizer")
    publication = manifest.get("publication")
    run_id = publication["source_run_id"] if publication else manifest["run_id"]
    problems = []
    if record.get("run_id") != run_id:
        problems.append(f"it records run {record.get('run_id')!r}, the manifest run {run_id!r}")
    if record.get("status") != "succeeded":
        problems.append(f"its status is {record.get('status')!r}, not 'succeeded'")
    outputs = record.get("outputs")
    written = outputs.get("clean") if isinstance(outputs, dict) else None
    if not isinstance(written, list) or not all(isinstance(s, dict) for s in written):
        problems.append("it lists no clean shards")
    else:
        made = {(s.get("path"), s.get("sha256")) for s in written}
        listed = {(s["path"], s["sha256"]) for s in manifest["clean"]["shards"]}
        released = set(publication.get("released_shards") or []) if publication else set()
        extra = sorted(p for p, sha in listed - made if p not in released)
        missing = sorted(p for p, sha in made - listed)
        if extra or missing:
            problems.append("its clean shards differ from the manifest's ("
                            + "; ".join(filter(None, [extra and f"not written by that run: {', '.join(extra[:5])}",
                                                      missing and f"left out: {', '.join(missing[:5])}"])) + ")")
    held = outputs.get("quarantine") if isinstance(outputs, dict) else None
    if isinstance(held, list) and all(isinstance(s, dict) for s in held):
        if {(s.get("path"), s.get("sha256")) for s in held} != \
                {(s["path"], s["sha256"]) for s in manifest["quarantine"]["shards"]}:
            problems.append("its quarantine shards differ from the manifest's")
    else:
        problems.append("it lists no quarantine shards")
    if problems:
        raise ManifestError(f"{path} does not describe manifest {where}: " + "; ".join(problems)
                            + "; the output mixes two runs. Re-run the sanitizer")
    return record
