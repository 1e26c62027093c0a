"""Drift between a baseline profile and a new one: profiles merge and keep, each kind of change alarms,
two halves of one data set do not, and thresholds follow the samples' sizes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from sanitizer.drift import ColumnDrift, DriftConfig, Profile, build_profile, drift_report, merge_profiles
from sanitizer.drift.profile import LevelCounts
from sanitizer.drift.vectors import vector_drift

KINDS = {"x": "numeric", "w": "numeric", "day": "date", "colour": "categorical", "flag": "boolean",
         "y": "label", "note": "text"}


def mixed_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    w = rng.lognormal(size=n)
    w[rng.random(n) < 0.1] = np.nan
    return pa.table({
        "x": rng.normal(size=n),
        "w": w,
        "day": pa.array(rng.integers(15000, 16000, size=n).astype("datetime64[D]")),
        "colour": rng.choice(["red", "green", "blue", "grey"], size=n, p=[0.4, 0.3, 0.2, 0.1]),
        "flag": rng.random(n) < 0.3,
        "y": rng.choice(["cat", "dog", "eel"], size=n, p=[0.5, 0.3, 0.2]),
        "note": ["some words"] * n,
    })


def keys_of(n: int, offset: int = 0) -> np.ndarray:
    return np.arange(offset, offset + n, dtype=np.uint64)


def profile_of(table: pa.Table, offset: int = 0, **kw) -> Profile:
    return build_profile(table, keys_of(table.num_rows, offset), KINDS, **kw)


def replaced(table: pa.Table, column: str, values) -> pa.Table:
    return table.set_column(table.column_names.index(column), column, pa.array(values))


def report_for(new: pa.Table, n: int = 3000, **config) -> dict:
    baseline = profile_of(mixed_table(n, seed=1))
    return drift_report(baseline, profile_of(new, offset=10 * n), DriftConfig(**config))


def alarmed(report: dict) -> set[tuple[str, str]]:
    return {(a["column"], a["statistic"]) for a in report["alarms"]}


def test_the_merge_of_parts_is_the_profile_of_the_whole():
    table = mixed_table(2000)
    whole = profile_of(table, sample_size=100)
    cuts = [0, 311, 1200, 1201, 2000]
    parts = [build_profile(table.slice(a, b - a), keys_of(b - a, a), KINDS, sample_size=100)
             for a, b in zip(cuts, cuts[1:])]
    assert merge_profiles(*parts).to_dict() == whole.to_dict()
    assert merge_profiles(parts[3], merge_profiles(parts[1], parts[0]), parts[2]).to_dict() == whole.to_dict()
    assert len(whole.columns["x"].values) == 100 and whole.columns["w"].missing == (
        np.isnan(table.column("w").to_numpy(zero_copy_only=False)).sum())
    colour = whole.columns["colour"]
    assert list(colour.levels) == ["red", "green", "blue", "grey"] and sum(colour.levels.values()) == 2000
    assert whole.columns["flag"].levels.keys() == {"true", "false"}
    assert whole.skipped == {"note": "text columns are compared through their representation vectors"}


def test_profiles_of_differently_seeded_or_sized_runs_do_not_merge():
    table = mixed_table(100)
    with pytest.raises(ValueError, match="same seed"):
        merge_profiles(profile_of(table, seed=1), profile_of(table, seed=2))


def test_a_profile_survives_json_and_gives_the_same_report():
    a, b = profile_of(mixed_table(1500, seed=1)), profile_of(mixed_table(1500, seed=2), offset=5000)
    back = Profile.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back.to_dict() == a.to_dict()
    report = drift_report(a, b)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert drift_report(back, b) == report


def test_the_report_is_deterministic_and_its_sample_follows_the_seed():
    a, b = mixed_table(1500, seed=1), mixed_table(1500, seed=2)
    first = drift_report(profile_of(a), profile_of(b, offset=5000), DriftConfig(seed=3))
    assert drift_report(profile_of(a), profile_of(b, offset=5000), DriftConfig(seed=3)) == first
    small = profile_of(a, sample_size=50).columns["x"].values
    assert not np.array_equal(small, profile_of(a, sample_size=50, seed=9).columns["x"].values)


def test_two_halves_of_one_data_set_do_not_alarm():
    table = mixed_table(8000, seed=4)
    keys = keys_of(8000)
    for seed in range(5):
        half = np.random.default_rng(seed).permutation(8000) < 4000
        a = build_profile(table.filter(pa.array(half)), keys[half], KINDS)
        b = build_profile(table.filter(pa.array(~half)), keys[~half], KINDS)
        report = drift_report(a, b)
        assert report["verdict"] == "ok", report["alarms"]
        assert set(report["columns"]) == {"x", "w", "day", "colour", "flag", "y"}


def test_a_numeric_column_shifted_by_half_a_standard_deviation_alarms():
    new = mixed_table(3000, seed=2)
    report = report_for(replaced(new, "x", new.column("x").to_numpy() + 0.5))
    assert alarmed(report) == {("x", "js_distance"), ("x", "wasserstein")}
    assert report["columns"]["x"]["statistics"]["wasserstein"]["value"] == pytest.approx(0.5, abs=0.1)
    assert report["verdict"] == "warning"


def test_a_date_column_moved_by_a_month_alarms():
    new = mixed_table(3000, seed=2)
    days = new.column("day").to_numpy().astype("datetime64[D]") + np.timedelta64(150, "D")
    assert ("day", "wasserstein") in alarmed(report_for(replaced(new, "day", days)))


def test_categorical_shares_moved_by_ten_points_alarm():
    new = mixed_table(3000, seed=2)
    colour = new.column("colour").to_numpy(zero_copy_only=False).copy()
    red = np.flatnonzero(colour == "red")[:300]  # 10% of the rows go from red to grey
    colour[red] = "grey"
    report = report_for(replaced(new, "colour", colour))
    assert alarmed(report) == {("colour", "linf")}
    assert report["columns"]["colour"]["statistics"]["linf"]["level"] in {"red", "grey"}


def test_a_class_share_moved_by_ten_points_alarms():
    new = mixed_table(3000, seed=2)
    y = new.column("y").to_numpy(zero_copy_only=False).copy()
    y[np.flatnonzero(y == "cat")[:300]] = "eel"
    assert alarmed(report_for(replaced(new, "y", y))) == {("y", "class_shares")}


def test_a_new_category_on_two_percent_of_the_rows_alarms():
    new = mixed_table(3000, seed=2)
    colour = new.column("colour").to_numpy(zero_copy_only=False).copy()
    colour[:60] = "ultraviolet"
    entry = report_for(replaced(new, "colour", colour))["columns"]["colour"]["statistics"]["new_categories"]
    assert entry["alarm"] and entry["value"] == pytest.approx(0.02) and entry["new_levels"] == ["ultraviolet"]


def test_a_rise_in_missing_values_alarms():
    new = mixed_table(3000, seed=2)
    x = new.column("x").to_numpy().copy()
    x[:300] = np.nan
    assert alarmed(report_for(replaced(new, "x", x))) == {("x", "missing_rate")}


def test_shifted_representation_vectors_alarm_and_a_fresh_draw_does_not():
    """The new vectors move by half a standard deviation along one of the baseline's main directions."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    spread = np.linspace(3, 1, 16)
    base = (rng.normal(size=(2000, 16)) * spread) @ rotation
    same = (rng.normal(size=(2000, 16)) * spread) @ rotation
    moved = ((rng.normal(size=(2000, 16)) + np.r_[0, 0.5, np.zeros(14)]) * spread) @ rotation
    empty = Profile()
    quiet = drift_report(empty, empty, vectors={"image": (base, same)})
    loud = drift_report(empty, empty, vectors={"image": (base, moved)})
    assert quiet["verdict"] == "ok" and loud["verdict"] == "warning"
    assert vector_drift(base, moved)["value"] > 2 * vector_drift(base, same)["value"]


def test_tiny_samples_get_wide_thresholds():
    """1,000 rows against 10 of the same distribution: a large distance, no alarm."""
    rng = np.random.default_rng(5)
    big = build_profile(pa.table({"x": rng.normal(size=1000)}), keys_of(1000), {"x": "numeric"})
    few = build_profile(pa.table({"x": rng.normal(size=10)}), keys_of(10, 5000), {"x": "numeric"})
    js = drift_report(big, few)["columns"]["x"]["statistics"]["js_distance"]
    assert js["value"] > 0.2 and js["null_threshold"] > js["value"] and not js["alarm"]


def test_huge_samples_do_not_alarm_on_a_trivial_change():
    """A one-point change of a share over a million rows is real but below the minimum effect."""
    base = LevelCounts("categorical", 1_000_000, 0, {"a": 500_000, "b": 500_000}, 0)
    new = LevelCounts("categorical", 1_000_000, 0, {"a": 510_000, "b": 490_000}, 0)
    report = drift_report(Profile(columns={"c": base}), Profile(columns={"c": new}))
    linf = report["columns"]["c"]["statistics"]["linf"]
    assert linf["null_threshold"] < linf["value"] < linf["min_effect"] and not linf["alarm"]
    tight = DriftConfig(columns={"c": ColumnDrift(min_effect={"linf": 0.005})})
    assert drift_report(Profile(columns={"c": base}), Profile(columns={"c": new}), tight)["verdict"] == "warning"


def test_column_severities_decide_the_verdict():
    new = mixed_table(3000, seed=2)
    shifted = replaced(new, "x", new.column("x").to_numpy() + 0.5)
    critical = report_for(shifted, columns={"x": ColumnDrift(severity="critical")})
    assert critical["verdict"] == "critical" and critical["alarms"][0]["severity"] == "critical"
    off = report_for(shifted, columns={"x": ColumnDrift(severity="off")})
    assert off["verdict"] == "ok" and off["columns"]["x"]["statistics"]["wasserstein"]["value"] > 0.3


def test_columns_that_cannot_be_compared_are_named():
    a = build_profile(mixed_table(200), keys_of(200), {"x": "numeric", "y": "label", "note": "text"})
    b = build_profile(mixed_table(200, 1), keys_of(200, 999), {"x": "categorical", "colour": "categorical"})
    assert drift_report(a, b)["not_compared"] == {
        "colour": "not in the baseline", "note": "text columns are compared through their representation vectors",
        "x": "numeric in the baseline, categorical in the new data", "y": "not in the new data"}


@pytest.mark.parametrize("build, message", [
    (lambda: DriftConfig(alpha=1.5), "alpha must be in"),
    (lambda: DriftConfig(severity="loud"), "severity must be one of"),
    (lambda: DriftConfig(min_effect={"js": 0.1}), "unknown drift statistic 'js'"),
    (lambda: ColumnDrift(min_effect={"linf": 2}), r"min_effect\['linf'\] must be in"),
])
def test_a_bad_config_says_what_to_change(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_config_survives_json():
    config = DriftConfig(alpha=0.05, columns={"x": ColumnDrift(severity="critical", min_effect={"linf": 0.2})})
    assert DriftConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_column_with_more_levels_than_kept_compares_its_tail_fairly():
    """Halves of a column of 3,000 levels (a few frequent, a long flat tail) profiled with 100 kept
    levels stay quiet; a new value on 2% of the rows still alarms."""
    rng = np.random.default_rng(6)
    values = np.array([f"tail-{i}" for i in np.minimum(rng.zipf(1.5, size=12000), 50) * 100 + rng.integers(0, 60, 12000)])
    half = rng.permutation(12000) < 6000
    kinds, keys = {"code": "categorical"}, keys_of(12000)
    a = build_profile(pa.table({"code": values[half]}), keys[half], kinds, max_levels=100)
    b_values = values[~half].copy()
    b = build_profile(pa.table({"code": b_values}), keys[~half], kinds, max_levels=100)
    assert a.columns["code"].other > 0 and drift_report(a, b)["verdict"] == "ok"
    b_values[:120] = "brand-new"
    planted = build_profile(pa.table({"code": b_values}), keys[~half], kinds, max_levels=100)
    entry = drift_report(a, planted)["columns"]["code"]["statistics"]["new_categories"]
    assert entry["alarm"] and entry["new_levels"] == ["brand-new"]


def test_the_shared_wasserstein_null_is_each_columns_permutation_null():
    """Every column of the same sample sizes shares one set of re-splits (a re-split says which ranks go to
    which sample, whatever the values); each column's null still matches its own permutation null."""
    from scipy.stats import wasserstein_distance

    from sanitizer.drift import thresholds as th
    from sanitizer.drift.statistics import scale_of

    rng = np.random.default_rng(3)
    a_skew, b_skew = rng.exponential(size=300), rng.exponential(size=200)
    a_wide, b_wide = 50.0 * rng.normal(size=300), 50.0 * rng.normal(size=200)
    for a, b in ((a_skew, b_skew), (a_wide, b_wide)):
        mean, var = th.wasserstein_null(a, b, 200, seed=0)
        pooled = np.concatenate([a, b])
        direct = []
        for _ in range(600):
            order = rng.permutation(len(pooled))
            direct.append(wasserstein_distance(pooled[order[:300]], pooled[order[300:]]) / scale_of(a))
        assert mean == pytest.approx(np.mean(direct), rel=0.1)
        assert np.sqrt(var) == pytest.approx(np.std(direct), rel=0.25)
    assert th.null_gaps(300, 200, 200, 0) is th.null_gaps(300, 200, 200, 0)  # drawn once for both columns
    assert not th.null_gaps(300, 200, 200, 0).flags.writeable
    assert not np.array_equal(th.null_gaps(300, 200, 200, 0), th.null_gaps(300, 200, 200, 1))  # the seed draws
