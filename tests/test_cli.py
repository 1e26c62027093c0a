"""End to end through ``sanitize run``: real Parquet in, real Beam pipeline, published shards out."""

from __future__ import annotations

import os
import subprocess

import pyarrow.parquet as pq
import pytest
from conftest import (
    column_values,
    digit_ids,
    load_json,
    read_dir,
    run_cli,
    sanitize_script,
    sha256_file,
    write_digits_parquet,
)

from sanitizer.data.reasons import parse as parse_reasons
from sanitizer.simulate import inject_outliers

ID = "image_id"


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory, digits):
    """All 1,797 digits with 3% uniform outliers planted; ids ``digit-NNNNN``."""
    X, y = digits
    Xp, idx = inject_outliers(X, 0.03, seed=0, kind="uniform")
    ids = digit_ids(len(y))
    path = write_digits_parquet(tmp_path_factory.mktemp("cli-in") / "digits.parquet", Xp, y, ids)
    return {"path": path, "ids": list(ids), "planted": set(ids[idx].tolist()), "n": len(y)}


@pytest.fixture(scope="module")
def small_input(tmp_path_factory, digits):
    """400 digits with 5% shift outliers and no id column (for the cheaper runs)."""
    X, y = digits
    Xp, idx = inject_outliers(X[:400], 0.05, seed=2, kind="shift")
    path = write_digits_parquet(tmp_path_factory.mktemp("cli-small") / "small.parquet", Xp, y[:400])
    return {"path": path, "n": 400, "planted": idx}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, poisoned):
    out = tmp_path_factory.mktemp("cli-out") / "run"
    rc = run_cli(
        "run", "--input", poisoned["path"], "--output", out, "--label-column", "label", "--id-column", ID,
        "--seed", "3",
    )
    return {"rc": rc, "out": out}


def test_exit_zero(e2e):
    assert e2e["rc"] == 0


def test_output_layout(e2e):
    out = e2e["out"]
    assert (out / "manifest.json").is_file()
    assert (out / "provenance.json").is_file()
    clean = sorted(p.name for p in (out / "clean").iterdir())
    quarantine = sorted(p.name for p in (out / "quarantine").iterdir())
    assert clean and all(n.startswith("part-") and n.endswith(".parquet") for n in clean)
    assert quarantine and all(n.startswith("part-") and n.endswith(".parquet") for n in quarantine)
    assert not (out / "_work").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "clean", "lineage.json", "manifest.json", "provenance.json", "quarantine", "report.html",
    ]


def test_every_row_is_accounted_for(e2e, poisoned):
    out = e2e["out"]
    clean_ids = column_values(out / "clean", ID)
    q_ids = column_values(out / "quarantine", ID)
    assert len(clean_ids) + len(q_ids) == poisoned["n"]
    assert len(set(clean_ids)) == len(clean_ids) and len(set(q_ids)) == len(q_ids)
    assert not set(clean_ids) & set(q_ids)
    assert set(clean_ids) | set(q_ids) == set(poisoned["ids"])


def test_rows_are_unchanged(e2e, poisoned):
    src = pq.read_table(poisoned["path"])
    clean = read_dir(e2e["out"] / "clean")
    assert clean.schema.names == src.schema.names
    by_id = {rid: i for i, rid in enumerate(src.column(ID).to_pylist())}
    take = [by_id[rid] for rid in clean.column(ID).to_pylist()]
    expected = src.take(take)
    assert clean.column("pixels").to_pylist() == expected.column("pixels").to_pylist()
    assert clean.column("label").to_pylist() == expected.column("label").to_pylist()


def test_manifest_matches_the_files(e2e, poisoned):
    out = e2e["out"]
    manifest = load_json(out / "manifest.json")
    assert manifest["id_column"] == ID and manifest["label_column"] == "label"
    assert manifest["feature_columns"] == ["pixels"]
    assert [f["name"] for f in manifest["schema"]] == [ID, "pixels", "label"]
    total = 0
    for part in ("clean", "quarantine"):
        listed = manifest[part]["shards"]
        assert listed
        on_disk = sorted(str(p.relative_to(out)) for p in (out / part).glob("*.parquet"))
        assert sorted(s["path"] for s in listed) == on_disk
        for shard in listed:
            path = out / shard["path"]
            assert shard["sha256"] == sha256_file(path)
            assert shard["rows"] == pq.read_metadata(path).num_rows
            assert shard["bytes"] == path.stat().st_size
        assert manifest[part]["rows"] == sum(s["rows"] for s in listed)
        total += manifest[part]["rows"]
    assert total == poisoned["n"]
    assert manifest["provenance"]["sha256"] == sha256_file(out / "provenance.json")


def test_provenance_counts_and_accounting(e2e, poisoned):
    out = e2e["out"]
    prov = load_json(out / "provenance.json")
    manifest = load_json(out / "manifest.json")
    assert prov["status"] == "succeeded"
    assert prov["run_id"] == manifest["run_id"]
    assert prov["seed"] == 3 and prov["config"]["seed"] == 3
    assert prov["runner"] == "DirectRunner"
    counts = prov["counts"]
    assert counts["rows_in"] == poisoned["n"]
    assert counts["clean"] == manifest["clean"]["rows"]
    assert counts["quarantined"] == manifest["quarantine"]["rows"]
    assert prov["accounting"]["holds"] is True and prov["accounting"]["problems"] == []
    assert prov["inputs"][0]["rows"] == poisoned["n"]
    assert prov["inputs"][0]["sha256"] == sha256_file(poisoned["path"])
    assert prov["detectors"]["outlier"]["status"] == "fitted"
    kinds = prov["columns"].pop("kinds")
    assert prov["columns"] == {
        "label": "label", "id": ID, "id_generated": False, "features": ["pixels"], "feature_count": 64,
        "ignored": [], "id_inferred": False,
    }
    assert {k["name"]: (k["kind"], k["judged"]) for k in kinds} == {
        ID: ("id-like", False), "pixels": ("numeric", True), "label": ("label", False)}


def test_quarantine_has_reasons_and_scores(e2e):
    q = read_dir(e2e["out"] / "quarantine")
    assert "sanitizer_reasons" in q.column_names
    assert "sanitizer_score_outlier" in q.column_names
    assert ID in q.column_names
    threshold = None
    for raw, codes, score in zip(
        q.column("sanitizer_reasons").to_pylist(),
        q.column("sanitizer_reason_codes").to_pylist(),
        q.column("sanitizer_score_outlier").to_pylist(),
    ):
        reasons = parse_reasons(raw)
        assert isinstance(reasons, list) and reasons
        assert [r["code"] for r in reasons] == codes
        for r in reasons:
            assert {"detector", "code", "score", "threshold", "evidence"} <= set(r)
        for r in reasons:  # every detector's reason crossed that detector's threshold
            if r["detector"] != "validation":
                assert r["score"] > r["threshold"], r
        outlier = [r for r in reasons if r["detector"] == "outlier"]
        if not outlier:  # held by another detector: the outlier score stayed under its threshold
            assert score is None or score <= 1.0
            continue
        r = outlier[0]
        threshold = r["threshold"]
        assert r["score"] == pytest.approx(score, abs=1e-5)
        assert r["evidence"]["extreme_features"]
        assert all(f["feature"].startswith("pixels[") for f in r["evidence"]["extreme_features"])
    assert threshold == 1.0  # the outlier score is each signal's share of its own threshold


def test_clean_shards_have_no_sanitizer_columns(e2e):
    clean = read_dir(e2e["out"] / "clean")
    assert clean.column_names == [ID, "pixels", "label"]


def test_planted_outliers_are_mostly_quarantined(e2e, poisoned):
    q_ids = set(column_values(e2e["out"] / "quarantine", ID))
    planted = poisoned["planted"]
    assert len(planted & q_ids) >= 0.9 * len(planted)
    false_alarms = len(q_ids - planted)
    assert false_alarms <= 0.02 * (poisoned["n"] - len(planted))


def test_summary_is_printed(tmp_path, small_input, capsys):
    out = tmp_path / "out"
    assert run_cli("run", "--input", small_input["path"], "--output", out, "--label-column", "label") == 0
    printed = capsys.readouterr().out
    assert "rows in:" in printed and "400" in printed
    assert "quarantined:" in printed and str(out / "manifest.json") in printed
    # Without an id column the ids are generated and still present in both outputs.
    clean = read_dir(out / "clean")
    q = read_dir(out / "quarantine")
    assert "sanitizer_id" in clean.column_names and "sanitizer_id" in q.column_names
    ids = clean.column("sanitizer_id").to_pylist() + q.column("sanitizer_id").to_pylist()
    assert sorted(ids) == sorted(f"small.parquet:{i}" for i in range(400))
    planted = {f"small.parquet:{i}" for i in small_input["planted"]}
    assert len(planted & set(q.column("sanitizer_id").to_pylist())) >= 0.9 * len(planted)


def test_rerun_into_existing_output_needs_overwrite(tmp_path, small_input, capsys):
    out = tmp_path / "out"
    args = ["run", "--input", small_input["path"], "--output", out, "--label-column", "label", "-q"]
    assert run_cli(*args) == 0
    first = load_json(out / "manifest.json")
    capsys.readouterr()

    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err and str(out) in err
    # The earlier run is untouched.
    assert load_json(out / "manifest.json") == first
    for shard in first["clean"]["shards"] + first["quarantine"]["shards"]:
        assert sha256_file(out / shard["path"]) == shard["sha256"]

    assert run_cli(*args, "--overwrite") == 0
    second = load_json(out / "manifest.json")
    assert second["clean"]["rows"] + second["quarantine"]["rows"] == small_input["n"]
    for shard in second["clean"]["shards"] + second["quarantine"]["shards"]:
        assert sha256_file(out / shard["path"]) == shard["sha256"]
    assert not (out / "_work").exists()
    assert load_json(out / "provenance.json")["config"]["overwrite"] is True


def test_console_script_runs(tmp_path, small_input):
    script = sanitize_script()
    assert script.is_file() and os.access(script, os.X_OK), f"console script not installed at {script}"
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(script), "run", "--input", str(small_input["path"]), "--output", str(out), "--label-column", "label",
         "--", "--runner", "DirectRunner"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rows in:" in proc.stdout
    manifest = load_json(out / "manifest.json")
    assert manifest["clean"]["rows"] + manifest["quarantine"]["rows"] == small_input["n"]
    prov = load_json(out / "provenance.json")
    assert prov["runner"] == "DirectRunner"
    assert prov["pipeline_options"] == ["--runner", "DirectRunner"]


def test_console_script_help_and_bad_usage(tmp_path):
    script = str(sanitize_script())
    ok = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "run" in ok.stdout
    bad = subprocess.run([script, "run", "--input", str(tmp_path / "none.parquet"), "--output", str(tmp_path / "o"),
                          "--label-column", "label"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "sanitize: error:" in bad.stderr and "none.parquet" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_report_policy_keeps_flagged_rows_clean(tmp_path, small_input):
    out = tmp_path / "out"
    cfg = tmp_path / "sanitize.yaml"
    cfg.write_text(
        f"input: {small_input['path']}\n"
        f"output: {out}\n"
        "label_column: label\n"
        "detectors:\n"
        "  label_flip: {enabled: false}\n"
        "  feature_collision: {enabled: false}\n"
        "policy:\n"
        "  outlier: report\n"
    )
    assert run_cli("run", "--config", cfg, "-q") == 0
    prov = load_json(out / "provenance.json")
    counts = prov["counts"]
    assert counts["quarantined"] == 0
    assert counts["clean"] == small_input["n"]
    assert len(column_values(out / "clean", "sanitizer_id")) == small_input["n"]
    assert pq.read_table(out / "quarantine").num_rows == 0
    flagged = counts["by_detector"]["outlier"]["flagged"]
    assert counts["by_detector"]["outlier"]["action"] == "report"
    assert flagged >= 0.9 * len(small_input["planted"])
    assert counts["reported_kept_clean"] == flagged
    assert counts["by_reason"]["outlier"] == flagged
    assert prov["config"]["policy"]["outlier"] == "report"


def test_flags_override_the_config_file(tmp_path, small_input):
    out = tmp_path / "out"
    cfg = tmp_path / "sanitize.toml"
    cfg.write_text(f'input = "{small_input["path"]}"\noutput = "{tmp_path / "elsewhere"}"\nlabel_column = "label"\n'
                   "seed = 1\n[sample]\nsize = 100\n")
    assert run_cli("run", "--config", cfg, "--output", out, "--seed", "9", "--sample-size", "150", "-q") == 0
    prov = load_json(out / "provenance.json")
    assert prov["seed"] == 9
    assert prov["config"]["sample"]["size"] == 150
    assert prov["sample"]["rows"] >= 150
    assert not (tmp_path / "elsewhere").exists()


# --------------------------------------------------------------------------- Beam options (issue 16.7)


def _captured_options(monkeypatch, *args):
    """The PipelineOptions `sanitize run ARGS` hands the job (the job itself not run)."""
    import sanitizer.beam.job

    seen = {}

    def fake_run(config, beam_args=None, options=None):
        seen.update(config=config, beam_args=beam_args, options=options)
        return {}

    monkeypatch.setattr(sanitizer.beam.job, "run", fake_run)
    assert run_cli("run", "-q", *args) == 0
    return seen


def test_a_dashed_beam_option_is_read_as_beams(monkeypatch, tmp_path):
    """--temp-location reaches Beam as temp_location (Beam itself would drop it without a word)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions

    seen = _captured_options(monkeypatch, "--input", tmp_path / "x.parquet", "--output", tmp_path / "o",
                             "--label-column", "label", "--temp-location=gs://b/tmp",
                             "--", "--max-num-workers", "3")
    options = seen["options"]
    assert options.view_as(GoogleCloudOptions).temp_location == "gs://b/tmp"
    assert options.view_as(WorkerOptions).max_num_workers == 3
    assert seen["beam_args"] == ["--temp_location=gs://b/tmp", "--max_num_workers", "3"]


def test_the_runs_own_options_are_pipeline_options(monkeypatch, tmp_path):
    """What Dataflow's options panel shows (the runner's get_all_options and display data) holds the run's options."""
    from apache_beam.transforms.display import DisplayData

    seen = _captured_options(monkeypatch, "--input", "gs://b/in/*.parquet", "--output", "gs://b/out",
                             "--label-column", "label", "--seed", "5", "--overwrite=true", "--runner=DirectRunner")
    options = seen["options"]
    shown = options.get_all_options(retain_unknown_options=True)
    assert shown["input"] == "gs://b/in/*.parquet" and shown["output"] == "gs://b/out"
    assert shown["label_column"] == "label" and shown["seed"] == 5 and shown["overwrite"] is True
    display = {item.get_dict()["key"]: item.get_dict()["value"] for item in DisplayData.create_from_options(options).items}
    assert display["input"] == "gs://b/in/*.parquet" and display["label_column"] == "label"
    assert seen["config"].seed == 5 and seen["config"].overwrite is True
    assert "--input" not in " ".join(seen["beam_args"]), "provenance records Beam's options, not the config twice"


def test_an_unknown_dashed_option_is_refused_naming_the_fix(tmp_path, capsys):
    code = run_cli("run", "--input", tmp_path / "x.parquet", "--output", tmp_path / "o", "--label-column", "label",
                   "--temp-locaton=gs://b/tmp")
    err = capsys.readouterr().err
    assert code == 2 and "--temp-locaton" in err and "did you mean --temp_location?" in err
    assert not (tmp_path / "o").exists()


def test_switches_take_launcher_values(monkeypatch, tmp_path):
    base = ["--input", tmp_path / "x.parquet", "--output", tmp_path / "o", "--label_column=label"]
    assert _captured_options(monkeypatch, *base, "--overwrite=false")["config"].overwrite is False
    assert _captured_options(monkeypatch, *base, "--overwrite")["config"].overwrite is True


def test_a_dashed_beam_option_reaches_a_real_run(tmp_path, small_input):
    out, temp = tmp_path / "out", tmp_path / "tmp"
    assert run_cli("run", "--input", small_input["path"], "--output", out, "--label-column", "label", "-q",
                   f"--temp-location={temp}", "--runner=DirectRunner") == 0
    recorded = load_json(out / "provenance.json")["pipeline_options"]
    assert f"--temp_location={temp}" in recorded and "--runner=DirectRunner" in recorded
