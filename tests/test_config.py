"""build_config / load_config_file: files load, every mistake is a ConfigError that names the key and the fix."""

from __future__ import annotations

import re

import pytest

from sanitizer.settings.config import ACTIONS, Config, build_config, load_config_file
from sanitizer.detectors import REGISTRY
from sanitizer.detectors.outlier.detector import OutlierParams
from sanitizer.errors import ConfigError, SanitizerError

YAML_TEXT = """\
input: data/train-*.parquet
output: out/
label_column: label
id_column: image_id
feature_columns: [pixels]
seed: 7
sample:
  size: 5000
  min_per_class: 20
scoring:
  threads: 2
  batch_rows: 1024
detectors:
  outlier:
    threshold_knn: 4
    top_features: 5
policy:
  outlier: report
"""

TOML_TEXT = """\
input = "data/train-*.parquet"
output = "out/"
label_column = "label"
id_column = "image_id"
feature_columns = ["pixels"]
seed = 7

[sample]
size = 5000
min_per_class = 20

[scoring]
threads = 2
batch_rows = 1024

[detectors.outlier]
threshold_knn = 4
top_features = 5

[policy]
outlier = "report"
"""


def base(**extra):
    raw = {"input": "in.parquet", "output": "out", "label_column": "label"}
    raw.update(extra)
    return raw


def check_file_config(cfg: Config):
    assert cfg.input == "data/train-*.parquet"
    assert cfg.output == "out/"
    assert cfg.label_column == "label"
    assert cfg.id_column == "image_id"
    assert cfg.feature_columns == ("pixels",)
    assert cfg.seed == 7
    assert cfg.sample.size == 5000 and cfg.sample.min_per_class == 20
    assert cfg.scoring.threads == 2 and cfg.scoring.batch_rows == 1024
    outlier = cfg.detectors["outlier"]
    assert isinstance(outlier, OutlierParams)
    assert outlier.threshold_knn == 4.0 and isinstance(outlier.threshold_knn, float)
    assert outlier.top_features == 5
    # Settings not given keep their defaults.
    assert outlier.threshold_tail == OutlierParams().threshold_tail
    assert cfg.policy["outlier"] == "report"
    assert all(action == "quarantine" for name, action in cfg.policy.items() if name != "outlier")
    cfg.require_runnable()


@pytest.mark.parametrize("suffix,text", [(".yaml", YAML_TEXT), (".yml", YAML_TEXT), (".toml", TOML_TEXT)])
def test_config_files_load(tmp_path, suffix, text):
    path = tmp_path / f"sanitize{suffix}"
    path.write_text(text)
    raw = load_config_file(str(path))
    check_file_config(build_config(raw))


def test_yaml_and_toml_give_the_same_config(tmp_path):
    y = tmp_path / "a.yaml"
    t = tmp_path / "a.toml"
    y.write_text(YAML_TEXT)
    t.write_text(TOML_TEXT)
    assert build_config(load_config_file(str(y))) == build_config(load_config_file(str(t)))


def test_defaults():
    cfg = build_config(base())
    assert cfg.format == "auto" and cfg.seed == 0 and cfg.overwrite is False
    assert cfg.id_column is None and cfg.feature_columns is None
    assert set(cfg.detectors) == set(REGISTRY)
    assert cfg.policy == {name: "quarantine" for name in REGISTRY}
    assert cfg.enabled_detectors() == list(REGISTRY)  # every built-in detector runs unless switched off


def test_feature_columns_as_comma_separated_string():
    assert build_config(base(feature_columns="a, b,c")).feature_columns == ("a", "b", "c")


def test_disabled_detector_is_not_enabled():
    cfg = build_config(base(detectors={"outlier": {"enabled": False}}))
    assert "outlier" not in cfg.enabled_detectors()
    assert cfg.enabled_detectors() == [name for name in REGISTRY if name != "outlier"]


def test_to_dict_is_json_ready_and_complete():
    import json

    cfg = build_config(base(feature_columns=["x"], detectors={"outlier": {"threshold_knn": 6}}))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["feature_columns"] == ["x"]
    assert d["detectors"]["outlier"]["threshold_knn"] == 6.0
    assert d["sample"] == {"size": 100_000, "min_per_class": 50}


def test_config_error_is_a_sanitizer_error():
    assert issubclass(ConfigError, SanitizerError)


# --------------------------------------------------------------------------- mistakes


def test_unknown_top_level_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'labels'.*allowed keys:.*label_column") as info:
        build_config(base(labels="y"))
    for key in ("input", "output", "seed", "detectors", "policy", "sample"):
        assert key in str(info.value)


def test_unknown_key_in_a_section():
    with pytest.raises(ConfigError, match=r"unknown key 'sample\.sizes'.*allowed keys in 'sample': min_per_class, size"):
        build_config(base(sample={"sizes": 10}))


def test_unknown_detector_setting():
    with pytest.raises(ConfigError, match=r"unknown key 'detectors\.outlier\.threshold'.*threshold_knn, threshold_tail"):
        build_config(base(detectors={"outlier": {"threshold": 3}}))


@pytest.mark.parametrize("key", ["threshold_z", "n_estimators", "max_samples"])
def test_a_retired_outlier_setting_says_what_replaced_it(key):
    with pytest.raises(ConfigError, match=rf"'detectors\.outlier\.{key}' is no longer a setting: .*(threshold_tail|k-NN)"):
        build_config(base(detectors={"outlier": {key: 5}}))


def test_unknown_detector_names_the_available_ones():
    with pytest.raises(ConfigError, match=r"unknown detector 'label_noise' under 'detectors'; available: backdoor, duplicates, feature_collision, label_flip, outlier"):
        build_config(base(detectors={"label_noise": {}}))


def test_unknown_detector_in_policy():
    with pytest.raises(ConfigError, match=r"unknown detector 'copies' under 'policy'; available: backdoor, duplicates, feature_collision, label_flip, outlier"):
        build_config(base(policy={"copies": "report"}))


@pytest.mark.parametrize(
    "raw,pattern",
    [
        (base(seed="seven"), r"seed must be an integer, got 'seven'"),
        (base(seed=1.5), r"seed must be an integer, got 1\.5"),
        (base(seed=True), r"seed must be an integer, got True"),
        (base(overwrite="yes"), r"overwrite must be true or false, got 'yes'"),
        (base(label_column=3), r"label_column must be a non-empty string, got 3"),
        (base(input=""), r"input must be a non-empty string, got ''"),
        (base(sample={"size": "big"}), r"sample\.size must be an integer, got 'big'"),
        (base(sample=[1, 2]), r"sample must be a mapping of settings, got \[1, 2\]"),
        (base(detectors={"outlier": {"threshold_knn": "high"}}),
         r"detectors\.outlier\.threshold_knn must be a number, got 'high'"),
        (base(detectors={"outlier": {"neighbours": 10.5}}),
         r"detectors\.outlier\.neighbours must be an integer, got 10\.5"),
        (base(detectors={"outlier": {"enabled": "no"}}),
         r"detectors\.outlier\.enabled must be true or false, got 'no'"),
        (base(detectors=["outlier"]), r"detectors must be a mapping of detector name to settings"),
        (base(policy="report"), r"policy must be a mapping of detector name to action, got 'report'"),
        (base(feature_columns=[]), r"feature_columns must be a non-empty list of column names, got \[\]"),
        (base(feature_columns=["a", "a"]), r"feature_columns lists a column twice"),
    ],
)
def test_bad_type_names_key_and_given_value(raw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(raw)


@pytest.mark.parametrize(
    "raw,pattern",
    [
        (base(seed=-1), r"seed must be >= 0, got -1"),
        (base(seed=2**32), rf"seed must be <= {2**32 - 1}, got {2**32}"),
        (base(sample={"size": 5}), r"sample\.size must be >= 10, got 5"),
        (base(sample={"min_per_class": -1}), r"sample\.min_per_class must be >= 0, got -1"),
        (base(scoring={"threads": 1000}), r"scoring\.threads must be <= 256, got 1000"),
        (base(scoring={"batch_rows": 10}), r"scoring\.batch_rows must be >= 64, got 10"),
        (base(detectors={"outlier": {"threshold_knn": 0.1}}), r"detectors\.outlier\.threshold_knn must be >= 0\.5, got 0\.1"),
        (base(detectors={"outlier": {"threshold_tail": 50000}}),
         r"detectors\.outlier\.threshold_tail must be <= 10000, got 50000"),
        (base(detectors={"outlier": {"min_class_rows": 1}}), r"detectors\.outlier\.min_class_rows must be >= 5, got 1"),
        (base(detectors={"outlier": {"folds": 1}}), r"detectors\.outlier\.folds must be >= 2, got 1"),
        (base(media={"image_size": 8}), r"media\.image_size must be >= 16, got 8"),
        (base(media={"image_shapes": {"px": [28, 28, 2]}}), r"media\.image_shapes\.px must be \[height, width"),
        (base(media={"size": 3}), r"unknown key 'media\.size'"),
    ],
)
def test_out_of_range_names_key_bound_and_given_value(raw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(raw)


def test_bad_format_names_allowed_formats():
    with pytest.raises(ConfigError, match=r"format must be one of auto, parquet, csv, jsonl, tfrecord, got 'xlsx'"):
        build_config(base(format="xlsx"))


@pytest.mark.parametrize("action", ["drop", "QUARANTINE", "", None, 1])
def test_bad_policy_action_names_allowed_actions_and_given_value(action):
    allowed = ", ".join(ACTIONS)
    with pytest.raises(ConfigError, match=rf"policy\.outlier must be one of {allowed}, got {re.escape(repr(action))}"):
        build_config(base(policy={"outlier": action}))


def test_label_and_id_must_differ():
    with pytest.raises(ConfigError, match=r"label_column and id_column must differ, both are 'y'"):
        build_config(base(label_column="y", id_column="y"))


def test_features_must_not_include_label_or_id():
    with pytest.raises(ConfigError, match=r"feature_columns must not include the label column 'label'"):
        build_config(base(feature_columns=["a", "label"]))
    with pytest.raises(ConfigError, match=r"feature_columns must not include the id column 'rid'"):
        build_config(base(id_column="rid", feature_columns=["rid", "a"]))


@pytest.mark.parametrize("missing,flag", [("input", "--input"), ("output", "--output"), ("label_column", "--label-column")])
def test_require_runnable_names_the_flag(missing, flag):
    raw = base()
    del raw[missing]
    cfg = build_config(raw)
    with pytest.raises(ConfigError, match=rf"{missing} is required: pass {flag}"):
        cfg.require_runnable()


def test_config_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"must be a mapping of keys to values, got list"):
        build_config(["input"])


# --------------------------------------------------------------------------- files


def test_yaml_file_with_an_unknown_key_fails_in_build(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input: a.parquet\nouput: out\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'ouput'"):
        build_config(load_config_file(str(path)))


def test_toml_file_with_bad_policy_action(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[policy]\noutlier = "delete"\n')
    with pytest.raises(ConfigError, match=r"policy\.outlier must be one of quarantine, report, got 'delete'"):
        build_config(load_config_file(str(path)))


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"config file .*nope\.yaml.* does not exist"):
        load_config_file(str(path))


def test_unsupported_config_extension(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[x]\n")
    with pytest.raises(ConfigError, match=r"must end in \.yaml, \.yml, \.toml or \.json"):
        load_config_file(str(path))


@pytest.mark.parametrize("name,text", [("bad.yaml", "input: [unclosed\n"), ("bad.toml", "input = \n")])
def test_unparsable_config_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"config file .*{re.escape(name)}.* could not be parsed"):
        load_config_file(str(path))


def test_config_file_must_hold_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"must hold a mapping of keys to values"):
        load_config_file(str(path))


def test_empty_yaml_file_is_an_empty_config(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config_file(str(path)) == {}


def test_config_file_is_read_through_beams_filesystems(tmp_path, monkeypatch):
    """load_config_file opens through apache_beam FileSystems (gs:// for a Flex Template's config parameter).

    No offline non-local scheme ships with Beam, so this checks the read goes through FileSystems.open
    with a local path, and that a scheme Beam cannot serve is a ConfigError naming the path."""
    from apache_beam.io.filesystems import FileSystems

    from sanitizer.settings.config import load_config_file
    from sanitizer.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nlabel_column: y\n")
    opened = []
    real_open = FileSystems.open
    monkeypatch.setattr(FileSystems, "open", staticmethod(lambda p, **kw: opened.append(p) or real_open(p, **kw)))
    assert load_config_file(str(path)) == {"seed": 3, "label_column": "y"}
    assert opened == [str(path)]
    with pytest.raises(ConfigError, match="nosuch://b/c.yaml"):
        load_config_file("nosuch://b/c.yaml")


def test_image_flags_reach_the_media_section():
    import argparse

    from sanitizer.settings.options import add_run_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--input", "in", "--output", "out", "--label-column", "y",
                              "--image-size", "48", "--image-model", "b.pt", "--image-model-sha256", "ab"])
    media = config_from_args(args).media
    assert (media.image_size, media.image_model, media.image_model_sha256, media.text_chars) == (48, "b.pt", "ab", 2000)
