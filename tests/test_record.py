"""The typed run record: provenance.json round-trips through it unchanged, and older files load."""

from __future__ import annotations

import json

import pytest

from sanitizer.runs.lineage import events as lineage
from sanitizer.runs import record
from sanitizer.runs.record import Counts, RunRecord
from sanitizer.cli.summary import summary_lines


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A real run's provenance.json (DirectRunner on a small planted data set)."""
    import sanitizer
    from conftest import write_rows

    root = tmp_path_factory.mktemp("record")
    data = write_rows(root / "data.parquet")
    out = str(root / "out")
    prov = sanitizer.run({"input": str(data), "output": out, "label_column": "label", "id_column": "rid", "seed": 3})
    return out, prov


def test_a_runs_provenance_round_trips_exactly(published):
    out, prov = published
    on_disk = json.loads(open(f"{out}/provenance.json", encoding="utf-8").read())
    assert on_disk == prov
    rec = record.load(out)
    assert rec.to_dict() == on_disk  # nothing lost, renamed or added
    assert rec.succeeded and rec.accounting.holds
    assert rec.counts.rows_in == rec.counts.clean + rec.counts.quarantined > 0
    assert sum(s.rows for s in rec.clean) == rec.counts.clean
    assert sum(s.rows for s in rec.quarantine) == rec.counts.quarantined
    assert rec.timings.total_s is not None and rec.timings.total_s >= rec.timings.plan_s
    assert set(rec.counts.by_detector) == {n for n, d in rec.detectors.items() if d["status"] == "fitted"}


def test_unknown_keys_are_kept_and_missing_ones_read_as_empty():
    rec = RunRecord.from_dict({"run_id": "r1", "status": "succeeded", "added_later": {"x": 1},
                               "counts": {"rows_in": 5, "by_class": {"rows": {"a": 5}}}})
    assert rec.counts.rows_in == 5 and rec.counts.clean == 0 and rec.counts.class_rows == {"a": 5}
    assert rec.clean == [] and rec.timings.total_s is None and rec.validation is None
    assert rec.to_dict()["added_later"] == {"x": 1}
    assert RunRecord.from_dict(rec.to_dict()) == rec


def test_an_old_failed_accounting_without_problems_still_fails():
    rec = RunRecord.from_dict({"accounting": {"holds": False, "input_rows": 3}})
    assert not rec.accounting.holds and rec.accounting.problems


def test_not_a_json_object_is_refused():
    with pytest.raises(ValueError, match="JSON object"):
        RunRecord.from_dict(["not", "a", "record"])


def test_readers_take_the_record_or_its_dict(published):
    out, prov = published
    rec = record.load(out)
    assert summary_lines(rec, out) == summary_lines(prov, out)
    a, b = lineage.build_run_event(rec, out), lineage.build_run_event(prov, out)
    a.pop("eventTime"), b.pop("eventTime")
    assert a == b
    assert a["run"]["facets"]["sanitizer"]["rowsIn"] == rec.counts.rows_in


def test_counts_json_form_is_what_provenance_records():
    c = Counts(rows_in=2, clean=1, quarantined=1, by_reason={"outlier": 1}, class_rows={"0": 2},
               class_quarantined={"0": 1})
    d = c.to_dict()
    assert d["by_class"] == {"rows": {"0": 2}, "quarantined": {"0": 1}} and "review" not in d
    assert Counts.from_dict(d) == c


def test_an_in_process_run_gives_the_libraries_their_threads_back(tmp_path):
    """Scoring and fitting run faiss, BLAS and torch single-threaded; a training step after sanitizer.run in the
    same process gets the threads a fresh process has (a fresh interpreter, so earlier tests cannot interfere)."""
    import subprocess
    import sys

    from conftest import write_rows

    data = write_rows(tmp_path / "data.parquet")
    counts = ("import faiss, torch; from threadpoolctl import threadpool_info; "
              "print(faiss.omp_get_max_threads(), torch.get_num_threads(), "
              "max(p['num_threads'] for p in threadpool_info()))")
    fresh = subprocess.run([sys.executable, "-c", counts], capture_output=True, text=True, check=True).stdout.split()
    after_run = subprocess.run(
        [sys.executable, "-c",
         f"import sanitizer; sanitizer.run({{'input': {str(data)!r}, 'output': {str(tmp_path / 'out')!r}, "
         f"'label_column': 'label', 'id_column': 'rid'}}); " + counts],
        capture_output=True, text=True,
    )
    assert after_run.returncode == 0, after_run.stderr[-3000:]
    assert after_run.stdout.split()[-3:] == fresh
    assert (tmp_path / "out" / "manifest.json").exists()
