"""The classifiers ``label_flip`` may fit: the allow-list, and the checked import and instantiation.

A config names a scikit-learn classifier by import path; only ``ALLOWED_CLASSIFIERS`` are imported unless
it opts in with ``allow_custom_classifier`` (importing a module runs its code).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from sanitizer.errors import ConfigError
from sanitizer.param_checks import check_plain_data

DEFAULT_CLASSIFIER = "sklearn.linear_model.LogisticRegression"

# Import path -> default keyword arguments. Written out, never derived by importing modules: a config may
# name only these unless it opts in with allow_custom_classifier (importing a module runs its code).
ALLOWED_CLASSIFIERS: dict[str, dict[str, Any]] = {
    "sklearn.linear_model.LogisticRegression": {"max_iter": 1000},
    "sklearn.linear_model.LogisticRegressionCV": {"max_iter": 1000},
    "sklearn.neighbors.KNeighborsClassifier": {},
    "sklearn.ensemble.RandomForestClassifier": {},
    "sklearn.ensemble.ExtraTreesClassifier": {},
    "sklearn.ensemble.GradientBoostingClassifier": {},
    "sklearn.ensemble.HistGradientBoostingClassifier": {},
    "sklearn.ensemble.AdaBoostClassifier": {},
    "sklearn.ensemble.BaggingClassifier": {},
    "sklearn.naive_bayes.GaussianNB": {},
    "sklearn.naive_bayes.BernoulliNB": {},
    "sklearn.svm.SVC": {"probability": True},  # predict_proba exists only with probability=True
    "sklearn.svm.NuSVC": {"probability": True},
    "sklearn.neural_network.MLPClassifier": {},
    "sklearn.tree.DecisionTreeClassifier": {},
    "sklearn.tree.ExtraTreeClassifier": {},
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis": {},
    "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis": {},
}
_OPT_IN_FIX = "set detectors.label_flip.allow_custom_classifier: true if you trust this config: it runs code"


def allowed_classifiers_text() -> str:
    """The allow-list, grouped by module: ``sklearn.svm.{SVC, NuSVC}, ...`` (short enough for an error)."""
    groups: dict[str, list[str]] = {}
    for path in ALLOWED_CLASSIFIERS:
        module, _, name = path.rpartition(".")
        groups.setdefault(module, []).append(name)
    return ", ".join(f"{m}.{{{', '.join(names)}}}" if len(names) > 1 else f"{m}.{names[0]}" for m, names in groups.items())


def classifier_class(path: Any, allow_custom: bool = False) -> type:
    """The classifier class an import path names, checked before anything is instantiated or called.

    Without ``allow_custom`` the path must be in ALLOWED_CLASSIFIERS, and anything else is refused
    *before* any import (importing a module executes its top-level code). With it, the module is
    imported, and the attribute must still be a class deriving from scikit-learn's BaseEstimator and
    ClassifierMixin with predict_proba - a function such as ``os.system`` or a class such as
    ``subprocess.Popen`` is refused without being called.
    """
    key = "detectors.label_flip.classifier"
    if not isinstance(path, str) or "." not in path or not all(p.isidentifier() for p in path.split(".")):
        near = [p for p in ALLOWED_CLASSIFIERS if isinstance(path, str) and p.rpartition(".")[2] == path]
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise ConfigError(
            f"{key} must be an import path such as '{DEFAULT_CLASSIFIER}', got {path!r}{hint}"
        )
    if path not in ALLOWED_CLASSIFIERS and not allow_custom:
        raise ConfigError(
            f"{key} {path!r} is not one of the allowed scikit-learn classifiers with predict_proba "
            f"({allowed_classifiers_text()}); nothing was imported. To use another classifier class, "
            f"{_OPT_IN_FIX}"
        )
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{key} {path!r} cannot be imported ({exc})") from None
    except Exception as exc:  # a custom module that fails while it is imported
        raise ConfigError(f"{key} {path!r}: importing {module_name!r} failed ({type(exc).__name__}: {exc})") from None
    from sklearn.base import BaseEstimator, ClassifierMixin

    if not inspect.isclass(cls):
        raise ConfigError(
            f"{key} {path!r} is a {type(cls).__name__}, not a class; it must name a scikit-learn classifier "
            f"class with predict_proba, e.g. '{DEFAULT_CLASSIFIER}'"
        )
    if not (issubclass(cls, BaseEstimator) and issubclass(cls, ClassifierMixin)):
        raise ConfigError(
            f"{key} {path!r} is not a scikit-learn classifier (a subclass of sklearn.base.BaseEstimator and "
            f"ClassifierMixin); pick one such as '{DEFAULT_CLASSIFIER}'"
        )
    if not hasattr(cls, "predict_proba"):
        raise ConfigError(f"{key} {path!r} has no predict_proba; pick a probabilistic classifier")
    return cls


def make_classifier(path: str, params: dict, allow_custom: bool = False):
    """Instantiate a scikit-learn classifier from its import path (see :func:`classifier_class`) and
    plain-data keyword arguments; it must have predict_proba."""
    check_plain_data("detectors.label_flip.classifier_params", params)
    cls = classifier_class(path, allow_custom)
    kwargs = dict(ALLOWED_CLASSIFIERS.get(path, {}))
    kwargs.update(params)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"detectors.label_flip.classifier_params do not fit {path}: {exc}") from None
    validate = getattr(model, "_validate_params", None)  # scikit-learn >= 1.2 checks values only at fit time
    if validate is not None and hasattr(cls, "_parameter_constraints"):  # custom classes may declare none
        try:
            validate()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"detectors.label_flip.classifier_params are not valid for {path}: {exc}") from None
    if not hasattr(model, "predict_proba") or not hasattr(model, "fit"):
        raise ConfigError(
            f"detectors.label_flip.classifier {path!r} has no predict_proba with these classifier_params; "
            "pick a probabilistic classifier (for sklearn.svm.SVC, keep probability: true)"
        )
    return model
