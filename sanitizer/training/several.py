"""The clean data of several published runs as one (:func:`load_manifests`): a vetted run and the runs
sanitized against it since (``sanitize run --baseline``), read together by one training job.

Every manifest is verified on its own, exactly as :func:`sanitizer.training.manifest.load_manifest` does
(each may be pinned by its sha256). The runs must describe the same data: the same label, id and feature
columns with the same types, and the same column kinds, vocabularies and image settings - a categorical
value must mean the same code in every part, or a model would learn one thing from two codes. Anything that
differs raises :class:`~sanitizer.training.shards.ManifestError` naming the column and the runs. The result
is a :class:`~sanitizer.training.manifest.CleanData` whose shards are every run's shards in the order given
(``to_table``, ``to_pandas`` and ``torch_dataset`` read them all, each verified again as it is read); its
``parts`` name the runs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Sequence

from sanitizer.training.shards import ManifestError

SAME = ("label_column", "id_column", "feature_columns", "format")


def _schema_types(manifest: dict) -> dict[str, str]:
    return {str(f.get("name")): str(f.get("type")) for f in manifest.get("schema") or [] if isinstance(f, dict)}


def _differences(first: dict, other: dict) -> list[str]:
    out = [f"{key} ({first.get(key)!r} vs {other.get(key)!r})" for key in SAME if first.get(key) != other.get(key)]
    a, b = _schema_types(first), _schema_types(other)
    wanted = [first.get("label_column"), first.get("id_column"), *(first.get("feature_columns") or [])]
    out += [f"column {c!r}'s type ({a.get(c)} vs {b.get(c)})" for c in wanted if c and a.get(c) != b.get(c)]
    cols_a = {c.get("name"): c for c in first.get("columns") or []}
    cols_b = {c.get("name"): c for c in other.get("columns") or []}
    for name in sorted(set(cols_a) | set(cols_b), key=str):
        if cols_a.get(name) != cols_b.get(name):
            out.append(f"column {name!r}'s kind, vocabulary or image settings")
    return out


def load_manifests(paths: Sequence[str | os.PathLike], expected_sha256: Sequence[str | None] | None = None):
    """The verified clean data of every run in ``paths`` (output folders or manifest.json files), as one
    :class:`~sanitizer.training.manifest.CleanData`. ``expected_sha256``: one pinned manifest sha256 (or
    None) per path."""
    from sanitizer.training.manifest import load_manifest

    paths = list(paths)
    if not paths:
        raise ManifestError("load_manifests needs at least one run")
    pins = list(expected_sha256) if expected_sha256 is not None else [None] * len(paths)
    if len(pins) != len(paths):
        raise ManifestError(f"expected_sha256 has {len(pins)} entries for {len(paths)} runs: give one per run "
                            "(None where a run is not pinned)")
    parts = [load_manifest(p, pin) for p, pin in zip(paths, pins)]
    first = parts[0]
    seen: dict[str, str] = {}
    for part in parts:
        if part.run_id in seen:
            raise ManifestError(f"run {part.run_id} is given twice ({seen[part.run_id]} and {part.out_dir}); "
                                "its rows would be read twice")
        seen[part.run_id] = part.out_dir
        differ = _differences(first.manifest, part.manifest)
        if differ:
            raise ManifestError(
                f"runs {first.run_id} ({first.out_dir}) and {part.run_id} ({part.out_dir}) do not describe the "
                f"same data, so they cannot be read as one: {'; '.join(differ)}. Read them separately, or "
                "sanitize them in one run")
    shards = tuple(s for part in parts for s in part.shards)
    return replace(first, shards=shards, parts=tuple(parts))
