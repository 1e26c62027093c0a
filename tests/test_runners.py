"""The same job on three runners gives the same verdict for every record.

Sampling priorities and cross-fitting folds hang off hashes of record ids, so
neither bundle boundaries nor worker processes nor the portable runner's
shuffles can change which records are quarantined.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import column_values, load_json, write_digits_parquet

from sanitizer.config import build_config
from sanitizer.run import run
from sanitizer.simulate import inject_outliers

N = 360
RUNNERS = {
    "direct-in-memory": ["--direct_running_mode=in_memory"],
    "direct-multi-processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "portable-loopback": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits):
    X, y = digits
    Xp, idx = inject_outliers(X[:N], 0.05, seed=4, kind="uniform")
    Xp[7, 0] = np.nan  # one invalid row as well
    ids = np.array([f"img-{i:04d}" for i in range(N)], dtype=object)
    root = tmp_path_factory.mktemp("runners")
    # Two shards (two splits), several row groups each, read in 64-row batches: many bundles to spread.
    write_digits_parquet(root / "in" / "part-0.parquet", Xp[:200], y[:200], ids[:200], row_group_size=50)
    write_digits_parquet(root / "in" / "part-1.parquet", Xp[200:], y[200:N], ids[200:], row_group_size=50)
    return {"root": root, "ids": set(ids.tolist()), "planted": set(ids[idx].tolist())}


@pytest.fixture(scope="module")
def outcomes(data):
    """name -> result of running the job on that runner; each runner runs at most once per module."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            out = data["root"] / f"out-{name}"
            config = build_config(
                {
                    "input": str(data["root"] / "in"),
                    "output": str(out),
                    "label_column": "label",
                    "id_column": "image_id",
                    "seed": 2,
                    "sample": {"size": 300, "min_per_class": 10},
                    "scoring": {"batch_rows": 64},
                }
            )
            provenance = run(config, RUNNERS[name])
            cache[name] = {
                "provenance": provenance,
                "clean": frozenset(column_values(out / "clean", "image_id")),
                "quarantine": frozenset(column_values(out / "quarantine", "image_id")),
                "manifest": load_json(out / "manifest.json"),
            }
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(RUNNERS))
def test_runner_result_is_complete_and_non_trivial(outcomes, data, name):
    outcome = outcomes(name)
    clean, quarantine = outcome["clean"], outcome["quarantine"]
    assert not clean & quarantine
    assert clean | quarantine == data["ids"]
    assert "img-0007" in quarantine
    planted = data["planted"]
    # The outlier detector catches 14 of the 18 noise images on these 360 rows (10 folds of 36 rows: small
    # data, its weak spot); feature_collision, which once caught a few as a side effect, judges collisions.
    assert len(planted & quarantine) >= 0.75 * len(planted)
    assert len(clean) > 0.9 * N
    prov = outcome["provenance"]
    assert prov["status"] == "succeeded"
    assert prov["counts"]["rows_in"] == N
    assert prov["counts"]["quarantined"] == len(quarantine)
    assert outcome["manifest"]["clean"]["rows"] == len(clean)
    expected_runner = "PortableRunner" if name.startswith("portable") else "DirectRunner"
    assert prov["runner"] == expected_runner


def test_all_runners_agree(outcomes):
    reference = outcomes("direct-in-memory")
    for name in RUNNERS:
        other = outcomes(name)
        assert other["clean"] == reference["clean"], f"{name}: clean ids differ"
        assert other["quarantine"] == reference["quarantine"], f"{name}: quarantine ids differ"
        assert other["provenance"]["sample"] == reference["provenance"]["sample"], f"{name}: sample differs"
        assert other["provenance"]["counts"]["by_reason"] == reference["provenance"]["counts"]["by_reason"]
