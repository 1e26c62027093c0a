"""``duplicates``: records that copy another record, disagree with their copies' label, or copy a holdout record.

Copies are how poison is amplified (one crafted record replicated many times) and how an evaluation is
fooled (training records that are copies of test records). Unlike the other detectors, the evidence is not
in a sample: a record's copy may be anywhere in the data. So the pipeline hashes every record's content
(every column but the id and the label: :mod:`sanitizer.detectors.duplicates.content`) in a stage of its
own, groups records by content hash with a GroupByKey (linear in the data, no index of all records in one
place), and decides per group (:mod:`sanitizer.detectors.duplicates.groups`):

* ``leak``: the record equals a record of the holdout set (``holdout``: a path to an evaluation set, any
  supported format); held with the holdout record's id;
* ``label_conflict``: identical records with different labels; the copies whose label is not the group's
  majority are held (on a tie, every copy is);
* ``duplicate``: the other copies of a kept one (the first read; with the user's ids, the smallest record key), held with the kept
  copy's id and the group;

and a group is left alone when its content would repeat by chance in data of this size
(:mod:`sanitizer.detectors.duplicates.chance`): identical survey answers are not copies. ``fit`` only sets
the detector up; the verdicts reach ``score`` inside its state (fitted alone, on one batch, it finds the copies within it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from sanitizer.detectors.base import Batch, Scores
from sanitizer.detectors.contract import Detector
from sanitizer.detectors.duplicates import report
from sanitizer.detectors.duplicates.groups import CODES, LABEL_CONFLICT, LEAK, NEAR_DUPLICATE, Verdicts
from sanitizer.detectors.duplicates.in_sample import verdicts_in
from sanitizer.param_checks import check_int, check_number


@dataclass(frozen=True)
class DuplicatesParams:
    enabled: bool = True
    chance_max: float = 0.001
    """A group of identical records is held only when fewer than this many copies of its content are
    expected by chance in a run of its size (columns taken as independent: kept far below one)."""
    chance_sample: int = 20_000
    """Records in the seeded sample the value frequencies of the chance estimate come from."""
    text_jaccard: float = 0.5
    """Two texts (of 40 characters or more) are near copies from this estimated Jaccard similarity of their
    character 5-grams up."""
    image_bits: int = 6
    """Two images are near copies when their perceptual hashes (63 bits; either moved by a pixel) differ in
    at most this many bits and their pixels agree (mean absolute RGB difference at most 16 of 255)."""
    vector_ratio: float = 0.13
    """Two records' numeric vectors are near copies within this share of the data's median distance
    between nearest neighbours (cleanlab's near-duplicate rule), where that is not expected by chance."""
    holdout: str | None = None
    """An evaluation set (file, folder or glob; any supported format): training records equal to one of its
    records are held as ``leak``. Its columns must include the training data's content columns."""

    def validate(self) -> None:
        check_number("detectors.duplicates.chance_max", self.chance_max, low=0.0, high=1.0)
        check_int("detectors.duplicates.chance_sample", self.chance_sample, low=100, high=1_000_000)
        check_number("detectors.duplicates.text_jaccard", self.text_jaccard, low=0.3, high=1.0)
        check_int("detectors.duplicates.image_bits", self.image_bits, low=0, high=20)
        check_number("detectors.duplicates.vector_ratio", self.vector_ratio, low=0.0, high=1.0)
        if self.holdout is not None and (not isinstance(self.holdout, str) or not self.holdout.strip()):
            from sanitizer.errors import ConfigError

            raise ConfigError(f"detectors.duplicates.holdout must be a path, got {self.holdout!r}")


@dataclass(frozen=True)
class DuplicatesState:
    params: DuplicatesParams
    verdicts: Verdicts | None = None
    summary: dict = field(default_factory=dict)


class DuplicatesDetector(Detector):
    name: ClassVar[str] = "duplicates"
    needs: ClassVar[frozenset[str]] = frozenset({"features"})
    Params = DuplicatesParams
    row_independent: ClassVar[bool] = True  # a row's verdict is looked up by its key alone
    whole_data: ClassVar[bool] = True  # a pipeline judges every record in a stage of its own (prepare, not fit)
    score_range: ClassVar[tuple[float, float]] = (0.0, 2.0)
    colour = report.COLOUR
    neighbour_keys: ClassVar[tuple[str, ...]] = ("copy_of",)
    reason_codes: ClassVar[tuple[str, ...]] = CODES
    """The reason codes its flags carry (``Scores.codes``), one per kind of copy."""
    feature_keys: ClassVar[tuple[str, ...]] = ()

    def describe(self, evidence: dict[str, Any]) -> list[str]:
        return report.describe(evidence)

    def fit(self, sample: Batch, params: DuplicatesParams, seed: int) -> DuplicatesState:
        """Copies within ``sample`` (:mod:`~.in_sample`); a pipeline replaces them with its verdicts over
        every record (:meth:`with_verdicts`)."""
        verdicts = verdicts_in(sample, params.chance_max, seed)
        return DuplicatesState(params, verdicts, {"scope": "the sample", **verdicts.stats})

    def prepare(self, params: DuplicatesParams, seed: int) -> DuplicatesState:
        """The state a pipeline attaches its verdicts over every record to (:meth:`with_verdicts`): the
        sample is not searched, as the pipeline's own stage judges every record, the sample's included."""
        return DuplicatesState(params, None, {"scope": "every record"})

    @staticmethod
    def with_verdicts(state: DuplicatesState, verdicts: Verdicts, summary: dict) -> DuplicatesState:
        """The state every worker scores with: the run's verdicts attached (:mod:`sanitizer.beam.duplicates`)."""
        return replace(state, verdicts=verdicts, summary=summary)

    def score(self, batch: Batch, state: DuplicatesState) -> Scores:
        n = batch.n
        verdicts = state.verdicts
        if verdicts is None or n == 0:
            return Scores(np.zeros(n), np.zeros(n, dtype=bool), 0.5)
        at = verdicts.lookup(np.asarray(batch.keys, dtype=np.uint64))
        flagged = at >= 0
        evidence, codes = {}, {}
        labels = batch.labels
        for i in np.flatnonzero(flagged):
            v = int(at[i])
            code = int(verdicts.code[v])
            ev: dict[str, Any] = {"kind": CODES[code], "group": f"{int(verdicts.group[v]):016x}",
                                  "copies": int(verdicts.size[v])}
            if code == LEAK:
                ev["holdout_id"] = verdicts.other[v]
            elif code == LABEL_CONFLICT:
                ev.update(given_label=None if labels is None or labels[i] is None else str(labels[i]),
                          consensus_label=verdicts.consensus[v], votes=verdicts.votes[v])
            else:
                ev["kept_id"] = verdicts.other[v]
                if code == NEAR_DUPLICATE:
                    ev["similarity"] = verdicts.votes[v]
            if code != LEAK and verdicts.other[v] is not None:  # the copy that stays, shown beside this one
                ev["copy_of"] = [{"id": verdicts.other[v], "label": verdicts.consensus[v]}]
            if code != LEAK and code != NEAR_DUPLICATE:
                ev["chance_copies_expected"] = float(f"{verdicts.expected[v]:.3g}")
            evidence[int(i)] = ev
            codes[int(i)] = CODES[code]
        score = np.where(flagged, 1.0, 0.0)
        return Scores(score, flagged, 0.5, evidence, codes=codes)

    def summary(self, state: DuplicatesState) -> dict[str, Any]:
        out = {"chance_max": state.params.chance_max, "holdout": state.params.holdout}
        out.update(state.summary)
        return out
