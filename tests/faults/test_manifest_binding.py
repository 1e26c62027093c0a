"""Fault suite: a manifest that does not go with its provenance, or a damaged one (issue 30, cases 1 and 8).

The manifest names the sha256 of the run's ``provenance.json``; ``load_manifest``
refuses a provenance that is not that file (tampered, replaced by another run's
failed provenance, missing), one that records another run or a failed run, and
raises ``ManifestError`` - never ``ValueError``/``TypeError`` - on any field of
the wrong type (a damaged ``rows`` or ``bytes``). One real run per module; each
test edits a copy of its output.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

from sanitizer.training import ManifestError, load_manifest
from conftest import load_json, write_rows
from conftest import sanitize_quiet as sanitize


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    base = tmp_path_factory.mktemp("binding")
    data = write_rows(base / "data.parquet")
    out = base / "out"
    assert sanitize(data, out) == 0
    assert load_manifest(out).rows > 0
    return out


@pytest.fixture()
def out(published, tmp_path):
    target = tmp_path / "out"
    shutil.copytree(published, target)
    return target


def _rewrite(path, edit) -> None:
    doc = load_json(path)
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


def _rebind(out) -> None:
    """Make the manifest name the provenance.json now on disk (a forger's or a buggy writer's manifest)."""
    sha = hashlib.sha256((out / "provenance.json").read_bytes()).hexdigest()
    _rewrite(out / "manifest.json", lambda m: m["provenance"].update(sha256=sha))


def test_a_tampered_provenance_is_refused(out):
    _rewrite(out / "provenance.json", lambda p: p["counts"].update(quarantined=0))
    with pytest.raises(ManifestError, match=r"provenance.json is not the provenance .* published with"):
        load_manifest(out)


def test_a_missing_provenance_is_refused(out):
    (out / "provenance.json").unlink()
    with pytest.raises(ManifestError, match=r"provenance.json .* is missing"):
        load_manifest(out)


def test_another_runs_failed_provenance_is_refused_even_when_the_manifest_names_it(out):
    """The issue's mix: a manifest over one run's shards beside another run's failed provenance."""
    _rewrite(out / "provenance.json", lambda p: p.update(run_id="20260101T000000Z-other", status="failed"))
    _rebind(out)
    with pytest.raises(ManifestError, match=r"records run '20260101T000000Z-other'.*status is 'failed'"):
        load_manifest(out)


def test_a_provenance_that_wrote_other_shards_is_refused(out):
    _rewrite(out / "provenance.json", lambda p: p["outputs"]["clean"][0].update(sha256="0" * 64))
    _rebind(out)
    with pytest.raises(ManifestError, match=r"clean shards differ"):
        load_manifest(out)


def test_a_provenance_that_wrote_other_quarantine_shards_is_refused(out):
    _rewrite(out / "provenance.json", lambda p: p["outputs"]["quarantine"][0].update(sha256="0" * 64))
    _rebind(out)
    with pytest.raises(ManifestError, match=r"quarantine shards differ"):
        load_manifest(out)


def _set(path: list, value):
    def edit(manifest):
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


DAMAGE = {  # case: (where in the manifest, the damaged value, the field the error names)
    "shard rows null": (["clean", "shards", 0, "rows"], None, "clean.shards[0].rows"),
    "shard rows text": (["clean", "shards", 0, "rows"], "many", "clean.shards[0].rows"),
    "shard bytes text": (["clean", "shards", 0, "bytes"], "x", "clean.shards[0].bytes"),
    "shard bytes list": (["clean", "shards", 0, "bytes"], [1], "clean.shards[0].bytes"),
    "clean rows text": (["clean", "rows"], "abc", "clean.rows"),
    "clean rows null": (["clean", "rows"], None, "clean.rows"),
    "feature columns a string": (["feature_columns"], "a", "feature_columns"),
    "provenance a string": (["provenance"], "provenance.json", "provenance"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_field_raises_manifest_error_naming_it(out, case):
    path, value, field = DAMAGE[case]
    _rewrite(out / "manifest.json", _set(path, value))
    with pytest.raises(ManifestError, match=rf"field {re.escape(field)} is .* the manifest is damaged"):
        load_manifest(out)


def test_a_shard_rows_as_text_equal_to_the_truth_is_still_refused(out):
    manifest = load_json(out / "manifest.json")
    rows = manifest["clean"]["shards"][0]["rows"]
    _rewrite(out / "manifest.json", _set(["clean", "shards", 0, "rows"], str(rows)))
    with pytest.raises(ManifestError, match=r"clean.shards\[0\].rows .* not a whole number"):
        load_manifest(out)
