"""Evidence names coded values in words: the scoring stage fills ``value_from_row`` from the row as written."""

import datetime as dt

import numpy as np
import pyarrow as pa

from sanitizer.beam.evidence_values import fill_values
from sanitizer.detectors.base import Scores


def test_marked_evidence_gets_the_value_of_the_valid_row_it_belongs_to():
    table = pa.table({"Island": ["Biscoe", "Mars", None, "Dream"],
                      "Date Egg": [dt.date(2007, 11, 9), dt.date(1907, 11, 9), None, dt.date(2008, 1, 1)]})
    valid = np.array([True, False, True, True])  # row 1 failed a row check: batch rows are 0, 2, 3
    evidence = {
        1: {"unusual_values": [{"feature": "Island", "value_from_row": "Island"},
                               {"feature": "Date Egg", "value_from_row": "Date Egg"}]},
        2: {"trigger": {"value_from_row": "Island"}, "other": [{"value_from_row": "no such column"}]},
    }
    scores = Scores(np.zeros(3), np.array([False, True, True]), 1.0, evidence)
    fill_values({"outlier": scores}, table, valid)
    assert evidence[1]["unusual_values"] == [{"feature": "Island", "value": None},  # batch row 1 = table row 2
                                             {"feature": "Date Egg", "value": None}]
    assert evidence[2]["trigger"] == {"value": "Dream"}
    assert evidence[2]["other"] == [{"value": None}]  # never a KeyError, never the marker left behind


def test_dates_read_as_iso_text():
    table = pa.table({"d": [dt.date(1907, 11, 9)] * 2,
                      "t": [dt.datetime(1907, 11, 9), dt.datetime(1907, 11, 9, 10, 30)]})
    evidence = {0: {"item": {"value_from_row": "d"}, "at": {"value_from_row": "t"}},
                1: {"at": {"value_from_row": "t"}}}
    scores = Scores(np.zeros(2), np.ones(2, dtype=bool), 1.0, evidence)
    fill_values({"x": scores}, table, np.ones(2, dtype=bool))
    assert evidence[0] == {"item": {"value": "1907-11-09"}, "at": {"value": "1907-11-09"}}  # midnight: the date
    assert evidence[1]["at"] == {"value": "1907-11-09T10:30:00"}
