"""The detector contract: what every detector declares and promises.

A detector is one package (``sanitizer/detectors/NAME/``) defining a subclass of :class:`Detector`,
plus one line in ``sanitizer.detectors.BUILT_IN`` (or one :func:`sanitizer.detectors.register` call
for a detector that lives elsewhere). The class declares

* ``name``: the key under ``detectors:`` and ``policy:`` in a config, and in every output;
* ``needs``: the inputs it reads, a subset of :data:`INPUTS` (``"features"``: the feature
  matrix, ``"label"``: the given labels, ``"embedding"``: a precomputed embedding column).
  :meth:`Detector.needs_for` says what a *configured* detector reads, when a setting adds
  an input (feature_collision reads an embedding column only when ``embedding_column`` is
  set). A detector that needs ``"embedding"`` names the column in ``params.embedding_column``;
  planning checks every enabled detector's needs before any pipeline runs;
* ``Params``: a frozen dataclass of its settings, with ``enabled: bool`` and ``validate()``
  raising :class:`~sanitizer.errors.ConfigError` naming the key (``detectors.NAME.KEY``);
* ``row_independent``: True when a row's score depends on that row and the fitted state
  only, so scoring a batch in pieces equals scoring it whole (runners may then split it); equal
  flags and evidence, scores equal up to the last bits of floating-point rounding.

and implements

* ``fit(sample, params, seed) -> state | Skipped``: learn from the bounded sample. The state
  is small, picklable and holds no open handles (it reaches every worker as a Beam side
  input). ``Skipped(reason)`` is the one declared way to say "cannot fit on this data" (one
  class, too few rows); the run goes on without the detector and provenance records why.
  Anything ``fit`` *raises* fails the run, naming the detector: skipping it would publish
  data it normally screens as clean.
* ``score(batch, state) -> Scores``: pure (same batch and state, same scores; nothing
  mutated). Higher is more suspicious, NaN means "could not score"; a row is flagged when its
  score crosses the threshold (``Scores.thresholds`` per row, else ``Scores.threshold``);
  every flagged row's evidence is JSON-serialisable. An empty batch scores to empty arrays.
* ``summary(state) -> dict``: JSON-serialisable facts about the fit, recorded in provenance.

Optional hooks: :meth:`Detector.preflight` (check an external resource, such as a model
file, at planning time) and ``internal_threads`` (the detector parallelises its own scoring).

How the report shows the detector is the detector's too (by convention in its package's
``report.py``); each hook has a generic default, so a detector without them still renders:

* :meth:`Detector.describe` ``(evidence) -> lines``: one flagged row's evidence in plain-text
  lines (default ``None``: the report lists the evidence's scalar values as ``key: value``);
* ``colour``: a ``#rrggbb`` colour for its charts and scores (default: one of the report's spare colours);
* ``neighbour_keys``: the evidence keys that list reference rows (``{id, label}`` or
  ``{id, distance}``), shown beside the row (default: every list of dicts with an ``id``);
* ``feature_keys``: the evidence keys that list ``{feature, ...}`` the evidence points at,
  shown first among the row's feature values (default: every list of dicts with a ``feature``);
* ``label_matrix``: True when its evidence's ``given_label`` / ``suggested_label`` go into the
  report's given-vs-suggested label matrix (default False).

``tests/test_detector_contract.py`` checks every registered detector against this contract.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from typing import Any, ClassVar, Protocol, runtime_checkable

from sanitizer.detectors.base import Batch, Scores, Skipped

INPUTS = frozenset({"features", "label", "embedding"})
"""The inputs a detector may declare in ``needs``."""

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@runtime_checkable
class DetectorParams(Protocol):
    """What a detector's ``Params`` (a frozen dataclass) offers besides its own settings."""

    enabled: bool

    def validate(self) -> None:
        """Raise ConfigError naming the key (``detectors.NAME.KEY``) for a value out of range."""


class Detector(abc.ABC):
    """Base class of every detector; see the module docstring for the contract."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    Params: ClassVar[type]
    row_independent: ClassVar[bool]
    internal_threads: ClassVar[bool] = False
    """True when ``score`` uses every core itself, so the pipeline should not split batches across threads."""
    score_range: ClassVar[tuple[float, float]] = (0.0, 4.0)
    """Where this detector's scores usually lie: the span of the fixed bins every row's score is counted
    in for the report's histogram (scores outside land in an under- or overflow bin)."""

    # How the report shows this detector (see the module docstring); the defaults render any detector.
    colour: ClassVar[str | None] = None
    """``#rrggbb`` for its charts and score columns; None: one of the report's spare colours."""
    neighbour_keys: ClassVar[tuple[str, ...] | None] = None
    """Evidence keys listing reference rows; None: every list of dicts with an ``id``."""
    feature_keys: ClassVar[tuple[str, ...] | None] = None
    """Evidence keys listing ``{feature, ...}``; None: every list of dicts with a ``feature``."""
    label_matrix: ClassVar[bool] = False
    """True: its flagged rows' given and suggested labels go into the report's label matrix."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        abstract = any(getattr(getattr(cls, m, None), "__isabstractmethod__", False) for m in ("fit", "score", "summary"))
        if not abstract:  # a concrete detector: its declarations are checked when its module is imported
            check_declarations(cls)

    @abc.abstractmethod
    def fit(self, sample: Batch, params: Any, seed: int) -> Any:
        """A picklable state, or :class:`Skipped` when this data cannot support the detector."""

    @abc.abstractmethod
    def score(self, batch: Batch, state: Any) -> Scores:
        """Scores for every row of ``batch``; pure."""

    @abc.abstractmethod
    def summary(self, state: Any) -> dict[str, Any]:
        """JSON-serialisable facts about a fitted (not Skipped) state."""

    def needs_for(self, params: Any) -> frozenset[str]:
        """The inputs this detector reads with these settings (by default, ``needs``)."""
        return self.needs

    def preflight(self, params: Any, n_features: int) -> None:
        """Check, at planning time, anything ``fit`` would load from outside (raise ConfigError); by default nothing."""

    def describe(self, evidence: dict[str, Any]) -> list[str] | None:
        """One flagged row's evidence as plain-text lines for the report; None (the default): the report's
        generic ``key: value`` summary."""
        return None


def check_declarations(cls: type) -> None:
    """Raise TypeError unless ``cls`` declares the contract's class attributes correctly."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"{cls.__name__}.name must be an identifier string, got {name!r}")
    needs = getattr(cls, "needs", None)
    if not isinstance(needs, frozenset) or not needs or not needs <= INPUTS:
        raise TypeError(f"{cls.__name__}.needs must be a non-empty frozenset of {sorted(INPUTS)}, got {needs!r}")
    if not isinstance(getattr(cls, "row_independent", None), bool):
        raise TypeError(f"{cls.__name__}.row_independent must be declared True or False")
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and dataclasses.is_dataclass(params)):
        raise TypeError(f"{cls.__name__}.Params must be a dataclass, got {params!r}")
    if not params.__dataclass_params__.frozen:
        raise TypeError(f"{cls.__name__}.Params must be a frozen dataclass")
    fields = {f.name: f for f in dataclasses.fields(params)}
    if "enabled" not in fields or not isinstance(params().enabled, bool):
        raise TypeError(f"{cls.__name__}.Params must have an 'enabled: bool' setting with a default")
    if not callable(getattr(params, "validate", None)):
        raise TypeError(f"{cls.__name__}.Params must have a validate() method")
    colour = getattr(cls, "colour", None)
    if colour is not None and not (isinstance(colour, str) and _COLOUR.fullmatch(colour)):
        raise TypeError(f"{cls.__name__}.colour must be None or a '#rrggbb' string, got {colour!r}")
    for hook in ("neighbour_keys", "feature_keys"):
        keys = getattr(cls, hook, None)
        if keys is not None and not (isinstance(keys, tuple) and all(isinstance(k, str) for k in keys)):
            raise TypeError(f"{cls.__name__}.{hook} must be None or a tuple of evidence keys, got {keys!r}")
    if not isinstance(getattr(cls, "label_matrix", None), bool):
        raise TypeError(f"{cls.__name__}.label_matrix must be True or False")


def fitted(name: str, state: Any) -> Any:
    """``state`` if it is what ``fit`` may return (a state or Skipped); raise TypeError naming the detector otherwise."""
    if state is None or isinstance(state, (Scores, Batch)):
        raise TypeError(
            f"detector {name!r}: fit returned {type(state).__name__}; it must return its fitted state, "
            "or Skipped(reason) when the data cannot support it"
        )
    return state


__all__ = ["INPUTS", "Detector", "DetectorParams", "Skipped", "check_declarations", "fitted"]
