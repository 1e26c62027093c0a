"""Fault injection: hostile shapes are refused by a named limit, never hang or die mid-pipeline.

Issue 30, case 7:

* a YAML alias bomb ("billion laughs": nine anchors, each a list of nine uses of the one before)
  inside ``detectors.label_flip.classifier_params`` hung the run: the plain-data check walked its
  9^9 values. A config is now measured before anything walks it, each distinct list or mapping once,
  and refused beyond ``checks.MAX_VALUES`` values;
* a 300 x 4,000 table died with "Buffer size 4492941695 exceeds GRPC limit" at ``Sanitize/States``:
  the outlier detector keeps per-feature reference quantiles for every cross-fitting fold and class
  (about 1 MB per feature with three classes, pickled). Planning now refuses more than
  ``plan.MAX_FEATURE_VALUES`` feature values, naming the limit and ``--feature-columns``, and the
  fit measures the pickled state against ``fit.MAX_STATE_BYTES`` (it also grows with the classes,
  known only once the sample is drawn).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, synthetic_rows

from sanitizer.param_checks import check_plain_data
from sanitizer.settings.config import build_config, load_config_file
from sanitizer.errors import ConfigError, SanitizerError

BOMB = "\n".join(
    ["detectors:", "  label_flip:", "    classifier_params:"]
    + ["      a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["      C: *a8", ""]
)


def _csv(path: Path, n: int = 120) -> Path:
    rid, X, label = synthetic_rows(n)
    lines = ["rid,a,b,c,label"] + [f"{r},{x[0]:.6f},{x[1]:.6f},{x[2]:.6f},{y}" for r, x, y in zip(rid, X, label)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_yaml_alias_bomb_is_refused_by_its_size(tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB)
    out = tmp_path / "out"
    rc = run_cli("run", "--input", _csv(tmp_path / "in.csv"), "--output", out, "--label-column", "label",
                 "--id-column", "rid", "--config", config, "-q")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(config) in err and "more than 100,000 values" in err and "alias" in err, err
    assert not out.exists()


def test_a_bomb_built_in_python_is_refused_before_it_is_walked():
    """The same shape handed to the config builder or the plain-data check directly (not through a file)."""
    node: list = ["lol"] * 9
    for _ in range(8):
        node = [node] * 9
    raw = {"detectors": {"label_flip": {"classifier_params": {"C": node}}}}
    with pytest.raises(ConfigError, match="more than 100,000 values"):
        build_config(raw)
    with pytest.raises(ConfigError, match="more than 100,000 values"):
        check_plain_data("detectors.label_flip.classifier_params", {"C": node})


def test_anchors_used_a_few_times_still_work(tmp_path):
    """Size is what is limited, not YAML anchors: a config that reuses a section is read as before."""
    config = tmp_path / "anchors.yaml"
    config.write_text("detectors:\n  outlier: &off {enabled: false}\n  backdoor: *off\n"
                      "guard: &g {max_quarantine_share: 0.2}\n")
    built = build_config(load_config_file(str(config)))
    assert not built.detectors["outlier"].enabled and not built.detectors["backdoor"].enabled
    assert built.guard.max_quarantine_share == 0.2


def test_a_self_containing_alias_is_refused(tmp_path):
    config = tmp_path / "loop.yaml"
    config.write_text("detectors:\n  label_flip:\n    classifier_params: &p {C: *p}\n")
    with pytest.raises(ConfigError, match="contains itself"):
        load_config_file(str(config))


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    """300 rows x 4,000 numeric feature columns and a label."""
    rng = np.random.default_rng(0)
    columns = {f"f{j}": rng.normal(size=300) for j in range(4000)}
    columns["label"] = np.arange(300) % 3
    path = tmp_path_factory.mktemp("wide") / "wide.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def test_a_table_too_wide_to_fit_is_refused_before_the_pipeline(wide, tmp_path):
    from sanitizer.beam.plan import MAX_FEATURE_VALUES, make_plan

    config = build_config({"input": str(wide), "output": str(tmp_path / "out"), "label_column": "label"})
    with pytest.raises(ConfigError) as refused:
        make_plan(config)
    message = str(refused.value)
    assert "4,000 feature values" in message and f"at most {MAX_FEATURE_VALUES:,}" in message, message
    assert "--feature-columns" in message, message
    chosen = build_config({"input": str(wide), "output": str(tmp_path / "out"), "label_column": "label",
                           "feature_columns": [f"f{j}" for j in range(0, 4000, 200)]})
    assert len(make_plan(chosen).feature_names) == 20


def test_the_fitted_state_is_measured_and_bounded():
    """States too big to hand to the workers stop the run naming the detector and the fix; the limit
    admits what the feature limit lets through with a few classes."""
    from sanitizer.beam.fit import MAX_STATE_BYTES, check_state_size
    from sanitizer.detectors import REGISTRY, Batch

    rng = np.random.default_rng(1)
    n, d = 300, 40
    batch = Batch(rng.normal(size=(n, d)), np.array([str(i % 3) for i in range(n)], dtype=object),
                  rng.integers(0, 2**63, size=n, dtype=np.uint64), np.array([f"r{i}" for i in range(n)], dtype=object),
                  tuple(f"f{j}" for j in range(d)))
    states = {name: REGISTRY[name]().fit(batch, REGISTRY[name].Params(), 0) for name in ("outlier", "backdoor")}
    sizes = check_state_size(states, d)
    assert sizes["outlier"] == len(pickle.dumps(states["outlier"], protocol=pickle.HIGHEST_PROTOCOL))
    assert sum(sizes.values()) < MAX_STATE_BYTES
    # ~1 MB per feature with three classes: 1,024 features stay under the limit
    assert sizes["outlier"] / d * 1024 < MAX_STATE_BYTES
    with pytest.raises(SanitizerError, match=r"fitted state is .* MiB \(outlier: .*--feature-columns"):
        check_state_size(states, d, limit=sizes["outlier"] // 2)


def test_a_run_whose_state_is_too_big_stops_after_the_fit_publishing_nothing(tmp_path, capsys, monkeypatch):
    """The measured bound in a real run (lowered here, so a small table crosses it): exit 2, one line."""
    from sanitizer.beam import fit

    monkeypatch.setattr(fit, "MAX_STATE_BYTES", 200_000)
    out = tmp_path / "out"
    rc = run_cli("run", "--input", _csv(tmp_path / "in.csv", n=240), "--output", out, "--label-column", "label",
                 "--id-column", "rid", "-q")
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("sanitize: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "fitted state is" in err and "over the 0.2 MiB" in err and "--feature-columns" in err, err
    assert not (out / "manifest.json").exists()
