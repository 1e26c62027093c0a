"""Fault injection: a config file (or a Beam option) that names code must not run it.

Issue 10, defect 4: ``detectors.label_flip.classifier: os.system`` with
``classifier_params: {command: ...}`` ran the command while the config was
validated. Now only the allow-listed scikit-learn classifiers can be named;
any other class needs ``allow_custom_classifier: true`` ("this config runs
code"), and even then nothing is instantiated or called until it is checked to
be a scikit-learn classifier class. A path outside the allow-list is refused
before anything is imported. The same holds for Beam's ``--runner`` and
``--beam_plugins``, which Beam imports by name (and which the Airflow DAG's
``runner``/``beam_options`` params pass through).

Every test drives the real CLI or the real config builder, on real files in
tmp_path.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sanitizer.settings.config import build_config
from sanitizer.detectors.label_flip.classifiers import ALLOWED_CLASSIFIERS, make_classifier
from sanitizer.errors import ConfigError
from conftest import load_json, run_cli, synthetic_rows

KEY = "detectors.label_flip.classifier"
OPT_IN_FIX = "allow_custom_classifier: true"


# --------------------------------------------------------------------------- helpers


def write_csv(path: Path, n: int = 240) -> Path:
    """A small, clean 3-class CSV (rid, a, b, c, label)."""
    rid, X, label = synthetic_rows(n)
    lines = ["rid,a,b,c,label"] + [f"{r},{x[0]:.6f},{x[1]:.6f},{x[2]:.6f},{y}" for r, x, y in zip(rid, X, label)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_config(tmp_path: Path, label_flip: dict, name: str = "config.yaml") -> Path:
    """A YAML config whose only setting is ``detectors.label_flip``."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"detectors": {"label_flip": label_flip}}))
    return path


def sanitize(tmp_path: Path, config: Path, *extra: str) -> int:
    """``sanitize run --config CONFIG`` on a small CSV; the exit status."""
    data = write_csv(tmp_path / "in.csv")
    return run_cli("run", "--input", data, "--output", tmp_path / "out", "--label-column", "label",
                   "--id-column", "rid", "--config", config, "-q", *extra)


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path for modules the tests write; the modules are forgotten afterwards."""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("cfgcode_"):
            del sys.modules[name]
    importlib.invalidate_caches()


def write_module(folder: Path, name: str, marker: Path, body: str = "") -> None:
    """A module that creates ``marker`` when it is imported (its top-level code runs), plus ``body``."""
    (folder / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n" + textwrap.dedent(body)
    )
    importlib.invalidate_caches()


CUSTOM_CLASSIFIER = """
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class Clf(ClassifierMixin, BaseEstimator):
    \"\"\"A genuine custom classifier: logistic regression behind its own class.\"\"\"

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.model_ = LogisticRegression(C=self.C, max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


class NotAClassifier:
    \"\"\"A class whose construction would run code.\"\"\"

    def __init__(self, **kwargs):
        Path(MARKER_CALLED).write_text("constructed")


def run_me(**kwargs):
    Path(MARKER_CALLED).write_text("called")
"""


# --------------------------------------------------------------------------- os.system


@pytest.mark.parametrize("opt_in", [False, True], ids=["default", "opted-in"])
def test_os_system_classifier_never_runs(tmp_path, capsys, opt_in):
    """The reproduction from the issue: refused with exit 2, the command never ran, the key is named.
    Opting in does not help: os.system is not a class, so it is never called."""
    marker = tmp_path / "MARKER"
    settings = {"classifier": "os.system", "classifier_params": {"command": f"touch {marker}"}}
    if opt_in:
        settings["allow_custom_classifier"] = True
    code = sanitize(tmp_path, write_config(tmp_path, settings))
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists()
    assert "sanitize: error:" in err and KEY in err and "os.system" in err
    assert "Traceback" not in err
    if opt_in:
        assert "not a class" in err
    else:
        assert OPT_IN_FIX in err and "runs code" in err and "sklearn.linear_model.{LogisticRegression" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_yaml_python_tags_are_not_code(tmp_path, capsys):
    """Config YAML is parsed with safe_load: a python/object tag is a parse error, not a call."""
    marker = tmp_path / "MARKER"
    config = tmp_path / "config.yaml"
    config.write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    code = sanitize(tmp_path, config)
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists()
    assert "could not be parsed" in err


# --------------------------------------------------------------------------- custom modules


def test_custom_module_is_not_imported_without_the_opt_in(tmp_path, capsys, module_dir):
    """A path outside the allow-list is refused before anything is imported (importing runs code)."""
    marker = tmp_path / "IMPORTED"
    write_module(module_dir, "cfgcode_refused", marker, "MARKER_CALLED = ''\n" + CUSTOM_CLASSIFIER)
    code = sanitize(tmp_path, write_config(tmp_path, {"classifier": "cfgcode_refused.Clf"}))
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists()
    assert "cfgcode_refused" not in sys.modules
    assert KEY in err and "cfgcode_refused.Clf" in err and "nothing was imported" in err and OPT_IN_FIX in err


def test_custom_classifier_with_the_opt_in_runs(tmp_path, capsys, module_dir):
    """With allow_custom_classifier a genuine scikit-learn classifier class from the user's module is
    used: the run publishes and provenance names the class."""
    marker = tmp_path / "IMPORTED"
    write_module(module_dir, "cfgcode_custom", marker, "MARKER_CALLED = ''\n" + CUSTOM_CLASSIFIER)
    config = write_config(tmp_path, {"classifier": "cfgcode_custom.Clf", "classifier_params": {"C": 0.5},
                                     "allow_custom_classifier": True})
    code = sanitize(tmp_path, config)
    err = capsys.readouterr().err
    assert code == 0, err
    assert marker.exists()  # the user said the config runs code, and it did
    provenance = load_json(tmp_path / "out" / "provenance.json")
    assert provenance["config"]["detectors"]["label_flip"]["classifier"] == "cfgcode_custom.Clf"
    assert provenance["config"]["detectors"]["label_flip"]["allow_custom_classifier"] is True
    assert provenance["detectors"]["label_flip"]["status"] != "skipped", provenance["detectors"]["label_flip"]
    assert (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("name", ["NotAClassifier", "run_me"])
def test_custom_non_classifier_is_never_called(tmp_path, module_dir, name):
    """Even with the opt-in, a class that is not a scikit-learn classifier, or a function, is refused
    without being constructed or called."""
    called = tmp_path / "CALLED"
    module = f"cfgcode_{name.lower()}"
    write_module(module_dir, module, tmp_path / "IMPORTED", f"MARKER_CALLED = {str(called)!r}\n" + CUSTOM_CLASSIFIER)
    with pytest.raises(ConfigError) as info:
        build_config({"detectors": {"label_flip": {"classifier": f"{module}.{name}", "allow_custom_classifier": True}}})
    assert not called.exists()
    assert KEY in str(info.value) and f"{module}.{name}" in str(info.value)


@pytest.mark.parametrize("path", ["sklearn.preprocessing.StandardScaler", "subprocess.Popen",
                                  "sklearn.svm.LinearSVC", "builtins.eval"])
def test_non_classifiers_are_refused_even_with_the_opt_in(path):
    """The opt-in widens which classifier classes are allowed, never what counts as a classifier."""
    with pytest.raises(ConfigError) as info:
        build_config({"detectors": {"label_flip": {"classifier": path, "allow_custom_classifier": True}}})
    message = str(info.value)
    assert KEY in message and path in message


def test_failing_custom_module_is_a_config_error(tmp_path, module_dir):
    """A custom module that raises while it is imported is named as a config problem, not a traceback."""
    (module_dir / "cfgcode_broken.py").write_text("raise RuntimeError('boom at import')\n")
    importlib.invalidate_caches()
    with pytest.raises(ConfigError, match="cfgcode_broken.*boom at import"):
        build_config({"detectors": {"label_flip": {"classifier": "cfgcode_broken.Clf",
                                                   "allow_custom_classifier": True}}})


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_opt_in_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match="allow_custom_classifier"):
        build_config({"detectors": {"label_flip": {"allow_custom_classifier": value}}})


# --------------------------------------------------------------------------- the allow-list


@pytest.mark.parametrize("path", sorted(ALLOWED_CLASSIFIERS))
def test_every_allow_listed_classifier_is_a_probabilistic_sklearn_classifier(path):
    """The allow-list cannot rot: every entry imports, is a BaseEstimator + ClassifierMixin class of
    that name, and with its default settings is accepted by the config and has predict_proba."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert inspect.isclass(cls) and cls.__name__ == name
    assert issubclass(cls, BaseEstimator) and issubclass(cls, ClassifierMixin)
    params = build_config({"detectors": {"label_flip": {"classifier": path}}}).detectors["label_flip"]
    model = make_classifier(params.classifier, params.classifier_params)
    assert isinstance(model, cls) and hasattr(model, "predict_proba")


# --------------------------------------------------------------------------- classifier_params


class _Thing:
    pass


@pytest.mark.parametrize(
    "params",
    [{"C": print}, {"C": _Thing()}, {"class_weight": {1, 2}}, {"class_weight": {"a": [lambda: 0]}},
     {"class_weight": {1: 2.0}}],
    ids=["callable", "object", "set", "nested-callable", "non-string-key"],
)
def test_classifier_params_must_be_plain_data(params):
    with pytest.raises(ConfigError) as info:
        build_config({"detectors": {"label_flip": {"classifier_params": params}}})
    assert "detectors.label_flip.classifier_params" in str(info.value) and "plain data" in str(info.value)


def test_toml_datetime_classifier_param_is_refused(tmp_path, capsys):
    """A TOML file can hold values that are not plain data (dates); they are refused by key."""
    config = tmp_path / "config.toml"
    config.write_text("[detectors.label_flip.classifier_params]\nC = 1979-05-27T07:32:00Z\n")
    code = sanitize(tmp_path, config)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "detectors.label_flip.classifier_params.C" in err and "plain data" in err


def test_plain_classifier_params_still_work():
    params = build_config({"detectors": {"label_flip": {
        "classifier": "sklearn.ensemble.RandomForestClassifier",
        "classifier_params": {"n_estimators": 20, "max_depth": None, "class_weight": "balanced"},
    }}}).detectors["label_flip"]
    model = make_classifier(params.classifier, params.classifier_params)
    assert model.n_estimators == 20 and model.class_weight == "balanced"


# --------------------------------------------------------------------------- Beam options


def test_runner_naming_a_module_is_refused_before_import(tmp_path, capsys, module_dir):
    """Beam imports a dotted --runner and calls it; the run refuses it first and touches no output."""
    marker = tmp_path / "IMPORTED"
    write_module(module_dir, "cfgcode_runner", marker, "class Runner:\n    pass\n")
    data = write_csv(tmp_path / "in.csv")
    code = run_cli("run", "--input", data, "--output", tmp_path / "out", "--label-column", "label", "-q",
                   "--", "--runner", "cfgcode_runner.Runner")
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists() and "cfgcode_runner" not in sys.modules
    assert "--runner" in err and "cfgcode_runner.Runner" in err and "DataflowRunner" in err
    assert not (tmp_path / "out").exists()


def test_beam_plugins_are_refused(tmp_path, capsys, module_dir):
    marker = tmp_path / "IMPORTED"
    write_module(module_dir, "cfgcode_plugin", marker)
    data = write_csv(tmp_path / "in.csv")
    code = run_cli("run", "--input", data, "--output", tmp_path / "out", "--label-column", "label", "-q",
                   "--", "--beam_plugins", "cfgcode_plugin")
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists()
    assert "--beam_plugins" in err and "cfgcode_plugin" in err


@pytest.mark.parametrize("name", ["DirectRunner", "direct", "dataflow", "FlinkRunner", "PortableRunner",
                                  "apache_beam.runners.direct.direct_runner.DirectRunner"])
def test_beams_own_runners_are_accepted(name):
    from sanitizer.beam.options import resolve_runner

    assert resolve_runner(name).startswith("apache_beam.runners.")


@pytest.mark.parametrize("name", ["os.getpid", "nosuchrunner", "apache_beam.runners.runner.PipelineRunner"])
def test_other_runners_are_refused(name):
    from sanitizer.beam.options import resolve_runner

    with pytest.raises(ConfigError, match="--runner"):
        resolve_runner(name)


# --------------------------------------------------------------------------- expectation suites


def test_expectation_row_condition_is_refused_before_it_runs(tmp_path, capsys):
    """Great Expectations evaluates a pandas row_condition with DataFrame.query, which can call
    functions (``@pd.io.common.os.system(...)``): a suite with one is refused and never evaluated."""
    import json

    marker = tmp_path / "MARKER"
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "hostile", "expectations": [{
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "a", "min_value": -100, "max_value": 100, "condition_parser": "pandas",
                   "row_condition": f"@pd.io.common.os.system('touch {marker}') == 0"},
    }]}))
    data = write_csv(tmp_path / "in.csv")
    code = run_cli("run", "--input", data, "--output", tmp_path / "out", "--label-column", "label", "-q",
                   "--expectations", suite)
    err = capsys.readouterr().err
    assert code == 2, err
    assert not marker.exists()
    assert "row_condition" in err and "expectation #0" in err and "Traceback" not in err
