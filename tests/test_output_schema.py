"""What a run writes, read the way other tools read it: the quarantine's nested reasons column through DuckDB,
a score column per built-in detector whatever is enabled, zstd shards by default, and manifest.json /
provenance.json checked against their versioned JSON Schemas."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import load_json, read_dir, sanitize_quiet, write_rows

from sanitizer import schemas
from sanitizer.detectors import REGISTRY
from sanitizer.data.layout import score_column
from sanitizer.data.reasons import REASONS_TYPE, parse


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run with every detector on, one with only the outlier detector (uncompressed shards)."""
    root = tmp_path_factory.mktemp("schema")
    inp = write_rows(root / "rows.parquet", n=400, outliers=8)
    full, outlier_only = root / "full", root / "outlier-only"
    assert sanitize_quiet(inp, full) == 0
    cfg = root / "outlier-only.json"
    cfg.write_text(json.dumps({
        "compression": "none",
        "detectors": {name: {"enabled": False} for name in REGISTRY if name != "outlier"},
    }))
    assert sanitize_quiet(inp, outlier_only, "--config", str(cfg)) == 0
    return {"full": full, "outlier_only": outlier_only}


def _quarantine_files(out):
    files = sorted((out / "quarantine").glob("*.parquet"))
    assert files, "the planted outliers must be quarantined"
    return files


def test_duckdb_reads_the_reasons_as_nested_rows(runs):
    out = runs["full"]
    glob = str(out / "quarantine" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT rid, r.detector, r.code, r.action, r.score, r.threshold, r.evidence_json "
        f"FROM (SELECT rid, UNNEST(sanitizer_reasons) AS r FROM '{glob}')"
    ).fetchall()
    quarantined = read_dir(out / "quarantine")
    assert {row[0] for row in rows} == set(quarantined.column("rid").to_pylist())  # every held row has a reason
    outlier = [row for row in rows if row[1] == "outlier"]
    assert outlier, "the planted outliers are held by the outlier detector"
    for _, _, code, action, score, threshold, evidence in outlier:
        assert code == "outlier" and action == "quarantine"
        assert score is not None and threshold is not None and score > threshold
        assert isinstance(json.loads(evidence), dict)
    # The codes column and the structs agree row by row.
    for rid, codes, reasons in zip(quarantined.column("rid").to_pylist(),
                                   quarantined.column("sanitizer_reason_codes").to_pylist(),
                                   quarantined.column("sanitizer_reasons").to_pylist()):
        assert codes == [r["code"] for r in parse(reasons)], rid


def test_the_quarantine_schema_does_not_drift_with_the_enabled_detectors(runs):
    full = pq.read_schema(_quarantine_files(runs["full"])[0])
    partial = pq.read_schema(_quarantine_files(runs["outlier_only"])[0])
    assert full.equals(partial)
    assert full.field("sanitizer_reasons").type == REASONS_TYPE
    for name in REGISTRY:
        assert full.field(score_column(name)).type == "double"
    held = read_dir(runs["outlier_only"] / "quarantine")
    for name in REGISTRY:
        column = held.column(score_column(name))
        if name == "outlier":
            assert column.null_count == 0
        else:  # off in this run: null, not absent and not zero
            assert column.null_count == held.num_rows


def test_shards_are_zstd_by_default_and_as_configured(runs):
    def codecs(out):
        found = set()
        for folder in ("clean", "quarantine"):
            for f in sorted((out / folder).glob("*.parquet")):
                meta = pq.ParquetFile(f).metadata
                found |= {meta.row_group(g).column(c).compression
                          for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
        return found

    assert codecs(runs["full"]) == {"ZSTD"}
    assert codecs(runs["outlier_only"]) == {"UNCOMPRESSED"}
    assert load_json(runs["full"] / "manifest.json")["compression"] == "zstd"
    assert load_json(runs["outlier_only"] / "manifest.json")["compression"] == "none"


def test_manifest_and_provenance_match_their_schemas(runs):
    for out in runs.values():
        manifest, provenance = load_json(out / "manifest.json"), load_json(out / "provenance.json")
        assert manifest["schema_version"] == provenance["schema_version"] == schemas.VERSION
        schemas.validate("manifest", manifest)
        schemas.validate("provenance", provenance)
        for library in ("torch", "faiss-cpu", "great-expectations"):
            assert provenance["versions"][library] not in ("", "not installed")


def test_a_document_that_breaks_its_schema_is_named(runs):
    manifest = load_json(runs["full"] / "manifest.json")
    manifest["clean"]["shards"][0]["sha256"] = "not-a-digest"
    with pytest.raises(schemas.SchemaError, match=r"clean/shards/0/sha256"):
        schemas.validate("manifest", manifest)
    provenance = load_json(runs["full"] / "provenance.json")
    del provenance["seed"]
    with pytest.raises(schemas.SchemaError, match="'seed' is a required property"):
        schemas.validate("provenance", provenance)
    with pytest.raises(schemas.SchemaError, match="version 99 is not known"):
        schemas.validate("manifest", dict(manifest, schema_version=99))


def test_an_unknown_codec_is_refused_before_anything_runs(tmp_path):
    from sanitizer.settings.config import build_config
    from sanitizer.errors import ConfigError

    with pytest.raises(ConfigError, match="compression must be one of zstd, snappy, gzip, none, got 'lzma'"):
        build_config({"compression": "lzma"})
