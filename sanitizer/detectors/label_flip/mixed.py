"""``label_flip`` on mixed tables: how categorical and date columns reach its models and its neighbour vote.

A table with categorical or date columns is judged on one design matrix per row, built by
:class:`MixedEncoding` (fitted on the sample):

* the standardised numeric features, as on a numeric table;
* each date column as days since 1970, standardised the same way (a missing date: the sample's median);
* each categorical column one-hot: a level (a code; a null is one more level) with at least
  ``MIN_LEVEL_ROWS`` sample rows gets a column of its own, at most ``MAX_LEVELS`` per input column (the
  most frequent), and every other value - rare, beyond the bound, or never seen in the sample (codes
  from ``UNSEEN_BASE`` up) - shares one "other" column. One-hot columns are weighted by
  ``ONEHOT_WEIGHT`` (0.3): two rows that differ in one categorical column are 0.42 standard deviations
  apart. The neighbour vote runs on this mixed distance, and the linear model reads the same columns;
* each categorical column once more as a dense code 0..k (the kept levels, then "other"), for a
  model that splits categories natively.

The configured classifier (logistic regression by default, or any named one) reads the numeric, date and
one-hot columns; scikit-learn's HistGradientBoostingClassifier, when named, reads the dense codes as
native categories instead (``categorical_features``; k < 255 by the bound). Gradient-boosted trees are
not in the default: on real tables whose label the features explain only in part (customer churn) they
are confident enough about the unexplained rows that the noise model takes them for flips.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from sanitizer.data.batch import CATEGORICAL, DATE
from sanitizer.detectors.base import Batch
from sanitizer.representations.scaling import standardise, standardiser

MIN_LEVEL_ROWS = 5
"""A categorical level needs this many sample rows for a one-hot column (and a tree category) of its own."""
MAX_LEVELS = 64
"""At most this many levels of one categorical column get their own column; the rest share "other"."""
ONEHOT_WEIGHT = 0.3
"""A one-hot column's value (0 or this): two rows that differ in one categorical column are 0.42 standard
deviations apart (sqrt(2) * 0.3). Categories then refine a neighbourhood the numbers set instead of
redrawing it: at 1/sqrt(2) (a whole standard deviation) diamonds as shipped had 612 rows called flips,
most of its rarest cut's neighbours being other cuts of the same colour and clarity; at 0.3, 81."""


@dataclass(frozen=True)
class MixedEncoding:
    """The sample's view of a table's categorical and date columns; :meth:`design` builds the matrix."""

    numeric_width: int
    categorical: tuple[str, ...]  # input column names, one per code column
    levels: tuple[np.ndarray, ...]  # per categorical column: the codes with a column of their own, sorted
    dates: tuple[str, ...]
    date_fill: np.ndarray  # (e,) the sample's median day per date column
    date_mean: np.ndarray
    date_scale: np.ndarray

    @classmethod
    def fit(cls, sample: Batch) -> "MixedEncoding | None":
        """The encoding of the sample's categorical and date columns; None when it has neither."""
        codes, days = sample.categorical, sample.dates
        has_codes = codes is not None and codes.shape[1] > 0
        has_days = days is not None and days.shape[1] > 0
        if not has_codes and not has_days:
            return None
        levels = []
        for j in range(codes.shape[1] if has_codes else 0):
            values, counts = np.unique(codes[:, j], return_counts=True)
            order = np.lexsort((values, -counts))  # most frequent first, ties by code: deterministic
            kept = values[order][counts[order] >= MIN_LEVEL_ROWS][:MAX_LEVELS]
            levels.append(np.sort(kept))
        e = days.shape[1] if has_days else 0
        fill = np.zeros(e)
        if e:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an all-missing date column has no median: 0
                fill = np.nan_to_num(np.nanmedian(days, axis=0))
            mean, scale = standardiser(np.where(np.isnan(days), fill, days))
        else:
            mean, scale = np.zeros(0), np.ones(0)
        return cls(sample.X.shape[1], tuple(sample.columns.get(CATEGORICAL, ())) if has_codes else (),
                   tuple(levels), tuple(sample.columns.get(DATE, ())) if has_days else (), fill, mean, scale)

    @property
    def onehot_width(self) -> int:
        return sum(len(kept) + 1 for kept in self.levels)

    @property
    def linear_width(self) -> int:
        """Columns the linear model, a named classifier and the neighbour vote read: numeric, dates, one-hot."""
        return self.numeric_width + len(self.dates) + self.onehot_width

    def tree_columns(self) -> np.ndarray:
        """Columns of the design the tree model reads: numeric, dates, then the dense codes."""
        plain = np.arange(self.numeric_width + len(self.dates))
        return np.concatenate([plain, self.linear_width + np.arange(len(self.levels))])

    def dense(self, codes: np.ndarray) -> np.ndarray:
        """(n, k) int: each categorical value's position among its column's kept levels, or the column's
        "other" position (``len(kept)``) for any other code (rare, beyond the bound, or unseen)."""
        out = np.empty(codes.shape, dtype=np.int64)
        for j, kept in enumerate(self.levels):
            col = codes[:, j].astype(np.int64)
            at = np.searchsorted(kept, col)
            hit = at < len(kept)
            hit[hit] = kept[at[hit]] == col[hit]
            out[:, j] = np.where(hit, at, len(kept))
        return out

    def design(self, Z: np.ndarray, batch: Batch) -> np.ndarray:
        """(n, linear_width + k) float64: [standardised numeric | standardised dates | weighted one-hot |
        dense codes]; ``Z`` is the batch's standardised numeric features."""
        n = len(Z)
        parts = [Z]
        if self.dates:
            days = batch.dates
            parts.append(standardise(np.where(np.isnan(days), self.date_fill, days), self.date_mean, self.date_scale))
        if self.levels:
            dense = self.dense(batch.categorical)
            onehot = np.zeros((n, self.onehot_width))
            start = 0
            for j, kept in enumerate(self.levels):
                onehot[np.arange(n), start + dense[:, j]] = ONEHOT_WEIGHT
                start += len(kept) + 1
            parts += [onehot, dense.astype(np.float64)]
        return np.ascontiguousarray(np.concatenate(parts, axis=1))

    def summary(self, classifier: str, classifier_params: dict) -> dict:
        """What provenance records: the columns, their one-hot width, and how the classifier reads them."""
        native = classifier == NATIVE and self.levels and "categorical_features" not in classifier_params
        models = (f"{classifier} on the numeric and date columns and the categorical columns as native categories"
                  if native else f"{classifier} on the numeric and date columns and the one-hot columns")
        return {
            "categorical_columns": {name: {"levels_with_a_column": int(len(kept)), "other_column": True}
                                    for name, kept in zip(self.categorical, self.levels)},
            "date_columns": list(self.dates),
            "one_hot_columns": self.onehot_width,
            "level_bound": {"min_sample_rows": MIN_LEVEL_ROWS, "max_levels_per_column": MAX_LEVELS},
            "models": models,
            "neighbour_distance": f"standardised numeric and date columns, one-hot columns weighted {ONEHOT_WEIGHT}",
        }


def one_thread():
    """OpenMP held to one thread: the tree model's threads spin-wait on a busy machine (4000 rows: 24 s
    instead of 0.5 s on two shared cores), and the pipeline runs detectors side by side anyway."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="openmp")


class OnColumns:
    """A fitted classifier that reads some columns of the design matrix (picklable, scikit-learn-like)."""

    def __init__(self, model, columns, single_thread: bool = False):
        self.model, self.columns, self.single_thread = model, columns, single_thread
        self.classes_ = model.classes_

    def predict_proba(self, D: np.ndarray) -> np.ndarray:
        if not self.single_thread:
            return self.model.predict_proba(D[:, self.columns])
        with one_thread():
            return self.model.predict_proba(D[:, self.columns])


NATIVE = "sklearn.ensemble.HistGradientBoostingClassifier"
"""The classifier that, when named, reads the categorical columns as native categories."""


def fit_mixed_model(make, classifier: str, classifier_params: dict, encoding: MixedEncoding, D: np.ndarray,
                    y: np.ndarray, random_state: int):
    """One fold model on a mixed table: ``make()`` (the configured classifier) on the linear columns, or, for
    scikit-learn's HistGradientBoostingClassifier (unless its ``categorical_features`` are given), on the
    numeric and date columns and the dense codes, split as categories."""
    model = make()
    if "random_state" in model.get_params():
        model.set_params(random_state=random_state)
    k = len(encoding.levels)
    native = classifier == NATIVE and k > 0 and "categorical_features" not in classifier_params
    if native:
        cols = encoding.tree_columns()
        mask = np.zeros(len(cols), dtype=bool)
        mask[-k:] = True
        model.set_params(categorical_features=mask)
    else:
        cols = np.arange(encoding.linear_width)
    single = classifier == NATIVE
    with warnings.catch_warnings(), (one_thread() if single else contextlib.nullcontext()):
        warnings.simplefilter("ignore")
        model.fit(D[:, cols], y)
    return OnColumns(model, cols, single_thread=single)


PUSH = 0.5
"""A categorical column is named behind a suggestion when its value moves the linear model's log-odds of
the suggested class over the given one by at least this (against the column's average level)."""


def categorical_evidence(state, z: np.ndarray, fold: int, given: int, suggested: int, most: int = 3) -> list[dict]:
    """The categorical columns whose value pushed the row's fold model (its linear part) toward the
    suggested label: ``[{"column", "push", "value_from_row"}]``, strongest first (the scoring stage writes
    the row's value in). Empty when the model has no linear part or no column pushes ``PUSH`` or more."""
    encoding, model = state.encoding, state.models[fold]
    coef = getattr(getattr(model, "model", None), "coef_", None)
    if coef is None or not encoding.levels or coef.shape[1] != encoding.linear_width:
        return []
    classes = list(np.asarray(state.model_classes[fold]))
    if given not in classes or suggested not in classes:
        return []
    if coef.shape[0] == 1:  # binary: one row, the log-odds of classes[1]
        sign = 1.0 if classes.index(suggested) == 1 else -1.0
        delta = sign * coef[0]
    else:
        delta = coef[classes.index(suggested)] - coef[classes.index(given)]
    found = []
    start = encoding.numeric_width + len(encoding.dates)
    for j, kept in enumerate(encoding.levels):
        block = delta[start : start + len(kept) + 1] * ONEHOT_WEIGHT
        active = int(np.argmax(z[start : start + len(kept) + 1]))
        push = float(block[active] - block.mean())
        start += len(kept) + 1
        if push >= PUSH:
            found.append((push, encoding.categorical[j]))
    found.sort(key=lambda item: -item[0])
    return [{"column": name, "push": round(push, 2), "value_from_row": name} for push, name in found[:most]]
