"""Vocabularies counted over the clean rows: per-batch counts, summed in any order, bounded per column."""

import pyarrow as pa

from sanitizer.runs import level_counts
from sanitizer.runs.level_counts import add_levels, count_levels
from sanitizer.runs.record import Counts


def test_counts_read_values_as_text_and_leave_nulls_out():
    table = pa.table({"island": pa.array(["Biscoe", "Dream", None, "Biscoe"]).dictionary_encode(),
                      "code": [1, 2, 2, None]})
    assert count_levels(table, ["island", "code"]) == {"island": {"Biscoe": 2, "Dream": 1}, "code": {"1": 1, "2": 2}}


def test_batches_sum_in_any_order_through_the_run_counts():
    a = count_levels(pa.table({"c": ["x", "y", "y"]}), ["c"])
    b = count_levels(pa.table({"c": ["y", "z"]}), ["c"])
    one, two = Counts(levels=a) + Counts(levels=b), Counts(levels=b) + Counts(levels=a)
    assert one.levels == two.levels == {"c": {"x": 1, "y": 3, "z": 1}}
    assert (Counts() + Counts(levels=a)).levels == a  # a batch without categorical columns adds nothing


def test_a_column_keeps_its_most_frequent_values_when_over_the_bound(monkeypatch):
    monkeypatch.setattr(level_counts, "KEEP", 3)
    many = count_levels(pa.table({"c": ["a"] * 5 + ["b"] * 4 + ["c", "d", "e"]}), ["c"])["c"]
    assert many == {"a": 5, "b": 4, "c": 1}  # the rarest dropped, ties in first-seen order
    merged = add_levels({"c": {"a": 5, "b": 4}}, {"c": {"z": 9, "y": 1}})["c"]
    assert merged == {"z": 9, "a": 5, "b": 4}
