"""pipelines/: the launchable entry point (what Dataflow, Airflow, Flink and Spark launchers run) and the
example training step that consumes a manifest.

The entry point runs as a real subprocess, the way launchers start it: as a module from the
repository root, and as a file from somewhere else, with Beam options mixed in without a '--'
separator and `sanitize run` options spelled the launchers' way (--label_column=..., --overwrite=true).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_json, write_digits_parquet

from sanitizer.simulate import inject_outliers

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "sanitize_pipeline.py"
N = 300


def load_pipeline_module():
    """pipelines/sanitize_pipeline.py by path: ``pipelines`` is a folder of launchable files, not an installed package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sanitize_pipeline_under_test", PIPELINE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch(*args, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits):
    X, y = digits
    Xp, planted = inject_outliers(X[:N], 0.05, seed=11, kind="shift")
    ids = np.array([f"img-{i:04d}" for i in range(N)], dtype=object)
    root = tmp_path_factory.mktemp("pipelines")
    path = write_digits_parquet(root / "in" / "digits.parquet", Xp, y[:N], ids)
    return {"root": root, "input": path, "planted": set(ids[planted])}


@pytest.fixture(scope="module")
def published(data):
    """`python -m pipelines.sanitize_pipeline` from the repository root, Beam options mixed in."""
    root = data["root"]
    out = root / "out"
    proc = launch("-m", "pipelines.sanitize_pipeline",
                  "--input", data["input"], "--output", out, "--label-column", "label", "--id_column=image_id",
                  "--runner", "DirectRunner", "--direct_running_mode", "in_memory",  # Beam's, no '--' before them
                  "--seed=3", "--sample_size", "250",
                  f"--temp-location={root / 'beam-tmp'}",  # dashed: read as Beam's --temp_location, not dropped
                  cwd=REPO)
    return {"proc": proc, "out": out}


def test_module_entry_point_publishes_with_beam_options_mixed_in(published, data):
    proc, out = published["proc"], published["out"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = load_json(out / "manifest.json")
    provenance = load_json(out / "provenance.json")
    assert provenance["status"] == "succeeded"
    assert provenance["runner"] == "DirectRunner"
    assert "--direct_running_mode" in provenance["pipeline_options"]
    assert f"--temp_location={data['root'] / 'beam-tmp'}" in provenance["pipeline_options"]
    assert not any(o.startswith("--input") for o in provenance["pipeline_options"]), "the config is recorded once"
    assert provenance["config"]["seed"] == 3
    assert provenance["counts"]["rows_in"] == N
    assert manifest["clean"]["rows"] + manifest["quarantine"]["rows"] == N
    assert manifest["id_column"] == "image_id" and manifest["label_column"] == "label"
    assert all((out / s["path"]).is_file() for s in manifest["clean"]["shards"])
    assert f"rows in:      {N:>10,}" in proc.stdout


def test_file_entry_point_takes_launcher_style_options_from_any_folder(published, data, tmp_path):
    """What a Flex Template launcher runs: the file, every option as --name=value, --overwrite=true."""
    assert published["proc"].returncode == 0
    out = published["out"]
    old_run = load_json(out / "manifest.json")["run_id"]
    proc = launch(REPO / "pipelines" / "sanitize_pipeline.py",
                  f"--input={data['input']}", f"--output={out}", "--label_column=label", "--id_column=image_id",
                  "--seed=4", "--overwrite=true", "--quiet=false", "--runner=DirectRunner",
                  "--", "--direct_num_workers=1",  # and an explicit '--' still works
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = load_json(out / "manifest.json")
    assert manifest["run_id"] != old_run, "--overwrite=true replaced the earlier run"
    assert load_json(out / "provenance.json")["config"]["seed"] == 4


def test_a_mistyped_option_is_named_and_nothing_runs(data, tmp_path):
    proc = launch(PIPELINE, "--input", data["input"], "--output", tmp_path / "out",
                  "--label_column=label", "--sample_sise=10", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--sample_sise" in proc.stderr and "did you mean --sample_size?" in proc.stderr
    assert "sanitize run --help" in proc.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
    proc = launch(PIPELINE, "--input", data["input"], "--output", tmp_path / "out", "--label_column=label",
                  "--temp-locaton=/tmp/x", cwd=tmp_path)  # a dashed Beam name that no option has
    assert proc.returncode == 2 and "did you mean --temp_location?" in proc.stderr
    proc = launch(PIPELINE, "--overwrite=maybe", cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite: takes true or false, not 'maybe'" in proc.stderr


def test_the_launcher_is_the_standard_beam_shape(monkeypatch):
    """PipelineOptions from argv, the run's options a SanitizeOptions view of them: what the runner records."""
    import sanitizer.cli.main
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

    from sanitizer.beam.launcher import SanitizeOptions

    seen = {}
    monkeypatch.setattr(sanitizer.cli.main, "run_pipeline",
                        lambda options, config=None: seen.update(options=options, config=config) or 0)
    module = load_pipeline_module()
    assert module.run(["--input=gs://b/in/*.parquet", "--output=gs://b/out", "--label_column=y", "--seed=9",
                       "--overwrite=true", "--quiet=false", "--runner", "DataflowRunner", "--project=p",
                       "--temp-location=gs://b/tmp", "--", "--label_column=z"]) == 0
    options = seen["options"]
    assert isinstance(options, PipelineOptions)
    opts = options.view_as(SanitizeOptions)
    assert (opts.input, opts.output, opts.seed, opts.overwrite, opts.quiet) == (
        "gs://b/in/*.parquet", "gs://b/out", 9, True, False)
    assert opts.label_column == "z", "after '--' the flags are Beam's as given (the last one wins, as in Beam)"
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert options.view_as(GoogleCloudOptions).temp_location == "gs://b/tmp"
    assert seen["config"].seed == 9 and seen["config"].input == "gs://b/in/*.parquet"
    shown = options.get_all_options(retain_unknown_options=True)  # what DataflowRunner sends as the job's options
    assert shown["input"] == "gs://b/in/*.parquet" and shown["temp_location"] == "gs://b/tmp"
    assert opts.beam_args() == ["--runner", "DataflowRunner", "--project=p", "--temp_location=gs://b/tmp"]


def test_a_users_own_input_option_does_not_meet_sanitize_options():
    """Beam parses every PipelineOptions subclass in a process together; applying Sanitize in a pipeline that
    declares its own --input must not define SanitizeOptions (an argparse conflict)."""
    code = (
        "from apache_beam.options.pipeline_options import PipelineOptions\n"
        "import sanitizer, sanitizer.beam.job, sanitizer.cli.main\n"
        "from sanitizer.beam import Sanitize\n"
        "class MyOptions(PipelineOptions):\n"
        "    @classmethod\n"
        "    def _add_argparse_args(cls, parser):\n"
        "        parser.add_argument('--input')\n"
        "        parser.add_argument('--output')\n"
        "o = PipelineOptions(['--input=a'])\n"
        "assert o.view_as(MyOptions).input == 'a'\n"
        "o.get_all_options()\n"
        "assert not any(c.__name__ == 'SanitizeOptions' for c in PipelineOptions.__subclasses__())\n"
    )
    proc = launch("-c", code, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]


# --------------------------------------------------------------------------- train_example


def test_train_example_trains_from_the_manifest_and_refuses_a_tampered_shard(published, tmp_path):
    assert published["proc"].returncode == 0
    out = published["out"]
    manifest = load_json(out / "manifest.json")
    metrics_path = tmp_path / "metrics.json"
    proc = launch(REPO / "pipelines" / "train_example.py", "--manifest", out / "manifest.json",
                  "--metrics", metrics_path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["run_id"] == manifest["run_id"]
    assert metrics["clean_rows"] == manifest["clean"]["rows"]
    assert metrics["n_features"] == 64
    assert metrics["test_accuracy"] > 0.8
    try:
        import sanitizer.training  # noqa: F401

        assert metrics["loader"] == "sanitizer.training"
    except ImportError:
        assert metrics["loader"] == "builtin"

    shard = out / manifest["clean"]["shards"][0]["path"]
    original = shard.read_bytes()
    try:
        shard.write_bytes(original[:-9] + bytes(9))
        tampered = tmp_path / "tampered.json"
        proc = launch("-m", "pipelines.train_example", "--manifest", out / "manifest.json",
                      "--metrics", tampered, cwd=REPO)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "nothing trained" in proc.stderr and shard.name in proc.stderr
        assert not tampered.exists()
    finally:
        shard.write_bytes(original)
