"""The Dataflow container (docker/Dockerfile) and Flex Template metadata (docker/metadata.json).

No Docker engine here: the files are checked, not built. The checks keep them in
step with the project: the image's Beam and Python are the ones the tests run on,
it pins torch and installs this package, and the template's parameters are exactly
the options of ``sanitize run`` (a new run option fails this test until the
template knows it).
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path

import pytest

import lockfile

from sanitizer.cli.main import _run_parser

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
METADATA = REPO / "docker" / "metadata.json"
DOCKER_README = REPO / "docker" / "README.md"
REQUIRED = {"input", "output", "label_column"}  # what `sanitize run` cannot run without
LOCAL_ONLY = {"quiet"}  # console noise: means nothing to a template


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads(METADATA.read_text())


def run_actions() -> dict[str, argparse.Action]:
    """`sanitize run`'s options, by name with underscores (--label-column -> label_column)."""
    parser = argparse.ArgumentParser(prog="sanitize")
    run = _run_parser(parser.add_subparsers(dest="command"))
    actions = {}
    for action in run._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest != "help":
            actions[longs[0][2:].replace("-", "_")] = action
    return actions


# --------------------------------------------------------------------------- Dockerfile


def test_image_is_the_beam_sdk_at_the_locked_beam_and_python_versions(dockerfile):
    """The worker image's SDK is the Beam the lock pins (what the tests ran on), for the lock's Python."""
    froms = [args.split()[0] for word, args in dockerfile if word == "FROM"]
    final = froms[-1]  # the stage that becomes the image
    match = re.fullmatch(r"apache/beam_python(\d+)\.(\d+)_sdk:(\S+)", final)
    assert match, f"the final image must be an Apache Beam Python SDK image, got {final!r}"
    target = re.search(r"--python-version (\d+\.\d+)", (REPO / "Makefile").read_text())
    assert target, "the Makefile's lock target names the Python the lock is resolved for"
    assert f"{match[1]}.{match[2]}" == target[1], f"image Python {match[1]}.{match[2]} != the lock's {target[1]}"
    locked_beam = lockfile.read()["apache-beam"].version
    assert match[3] == locked_beam, (
        f"image Beam {match[3]} != apache-beam {locked_beam} in requirements/lock.txt: the SDK that builds "
        "the job must be the one in the worker container (move the FROM tag with the lock)"
    )
    launcher = [f for f in froms[:-1] if "template-launcher-base" in f]
    assert launcher, "the Flex Template launcher stage is missing"
    assert f"python{match[1]}{match[2]}-template-launcher-base" in launcher[0]


def test_image_installs_from_the_lock_with_torch_from_the_cpu_index(dockerfile):
    runs = [args for word, args in dockerfile if word == "RUN"]
    deps = next(r for r in runs if "-r /tmp/requirements.txt" in r)
    assert re.search(r"pip install .*-c requirements/lock\.txt .*-r /tmp/requirements\.txt", deps), (
        "the dependency layer must install under the lock (`-c requirements/lock.txt`)")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in deps, (
        f"torch=={lockfile.read()['torch'].version} (the lock's CPU build) comes from PyTorch's CPU-only index")
    assert not any(re.search(r"pip install .*\btorch==", r) for r in runs), "torch is pinned by the lock alone"

    copied = " ".join(args for word, args in dockerfile if word == "COPY" and "--from" not in args)
    for path in ("pyproject.toml", "requirements/lock.txt", "README.md", "sanitizer/", "pipelines/"):
        assert path in copied, f"the image must COPY {path}"
    assert any(re.search(r"pip install --no-deps \.(\s|$)", r) for r in runs), (
        "the image must `pip install --no-deps .` (the dependencies are in already; pip cannot hash a folder)"
    )
    env = " ".join(args for word, args in dockerfile if word == "ENV")
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=${WORKDIR}/pipelines/sanitize_pipeline.py" in env
    workdir = [args for word, args in dockerfile if word == "ARG" and args.startswith("WORKDIR=")]
    assert workdir and (REPO / "pipelines" / "sanitize_pipeline.py").is_file()
    entry = [args for word, args in dockerfile if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["/opt/apache/beam/boot"], "workers must start the Beam boot script"


def test_every_runtime_requirement_resolves_inside_the_lock(dockerfile):
    """What the dependency layer asks for (dependencies + [lineage]) is pinned by the lock, so the
    constrained install can only take the locked versions."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    pins = lockfile.read()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["lineage"]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11"}):
            continue
        pin = pins.get(canonicalize_name(req.name))
        assert pin and req.specifier.contains(Version(pin.version)), f"{req} is not locked (run `make lock`)"


def test_build_push_and_launch_are_documented():
    readme = DOCKER_README.read_text()
    header = DOCKERFILE.read_text()
    for doc in (readme, header):
        for step in ("docker build -f docker/Dockerfile", "docker push", "gcloud dataflow flex-template build",
                     "gcloud dataflow flex-template run", "--metadata-file docker/metadata.json",
                     "sdk_container_image"):
            assert step in doc, f"{step!r} is not explained"


# --------------------------------------------------------------------------- metadata.json


def test_metadata_is_a_flex_template_spec(metadata):
    assert metadata["name"] and metadata["description"]
    names = [p["name"] for p in metadata["parameters"]]
    assert len(names) == len(set(names)), "duplicate parameter names"
    for param in metadata["parameters"]:
        assert set(param) <= {"name", "label", "helpText", "isOptional", "regexes", "paramType"}, param
        assert re.fullmatch(r"[a-z][a-z0-9_]*", param["name"]), param["name"]
        assert param["label"] and param["helpText"], param["name"]
        assert isinstance(param["isOptional"], bool), param["name"]
        for regex in param.get("regexes", []):
            re.compile(regex)


def test_metadata_parameters_are_exactly_the_run_options(metadata):
    options = run_actions()
    names = {p["name"] for p in metadata["parameters"]}
    unknown = names - set(options)
    assert not unknown, f"template parameters that are not `sanitize run` options: {sorted(unknown)}"
    missing = set(options) - LOCAL_ONLY - names
    assert not missing, (f"`sanitize run` options missing from docker/metadata.json: {sorted(missing)} "
                         "(add them, or list them as local-only in this test)")
    for param in metadata["parameters"]:
        assert param["isOptional"] is (param["name"] not in REQUIRED), param["name"]


def test_metadata_values_are_what_the_run_parser_accepts(metadata):
    """Each parameter's regexes admit the values its option takes, and the launcher's --name=value parses."""
    options = run_actions()
    samples = {int: ("7", "x7"), float: ("0.25", "a quarter"), None: ("some/value", "")}
    for param in metadata["parameters"]:
        action = options[param["name"]]
        regexes = [re.compile(r) for r in param.get("regexes", [])]

        def admitted(value: str) -> bool:
            return all(r.search(value) for r in regexes)

        if action.choices:
            assert all(admitted(c) for c in action.choices), (param["name"], action.choices)
            assert not admitted("bogus"), param["name"]
            value = list(action.choices)[0]
        elif action.const is True:  # a switch: the launcher sends --name=true / --name=false
            assert admitted("true") and admitted("false") and not admitted("yes please"), param["name"]
            value = "true"
        else:
            good, bad = samples[action.type if action.type in (int, float) else None]
            assert admitted(good) and not admitted(bad), param["name"]
            value = good
        # What the Flex Template launcher sends reaches the SanitizeOptions option of that name.
        from apache_beam.options.pipeline_options import PipelineOptions

        from sanitizer.beam.launcher import SanitizeOptions, launcher_flags

        opts = PipelineOptions(launcher_flags([f"--{param['name']}={value}"])).view_as(SanitizeOptions)
        expected = action.type(value) if action.type else value
        if isinstance(action, argparse._AppendAction):  # a repeatable option (--ignore) gathers a list
            expected = [expected]
        assert getattr(opts, action.dest) == expected, (param["name"], value)


def test_seed_regex_admits_exactly_the_seeds_the_config_accepts(metadata):
    from sanitizer.settings.config import build_config
    from sanitizer.errors import ConfigError

    regex = re.compile(next(p for p in metadata["parameters"] if p["name"] == "seed")["regexes"][0])
    for value in ("0", "7", str(2**32 - 1)):
        assert regex.search(value)
        build_config({"seed": int(value)})
    for value in ("-1", "-7"):
        assert not regex.search(value), f"the template admits seed {value}, which the config refuses"
        with pytest.raises(ConfigError):
            build_config({"seed": int(value)})


def test_every_image_is_pinned(dockerfile):
    for word, args in dockerfile:
        if word == "FROM" or (word == "COPY" and "--from=" in args and "/" in args.split()[0]):
            image = args.split()[0].removeprefix("--from=")
            if word == "COPY" and ":" not in image:
                continue  # a stage name
            assert ":" in image.rsplit("/", 1)[-1], f"{image} has no tag"
            assert not image.endswith(":latest"), f"{image}: pin a version, not :latest"


def test_dependencies_are_installed_before_the_source_is_copied(dockerfile):
    """Editing the source must not reinstall every dependency: the dependency layer comes first."""
    steps = [(word, args) for word, args in dockerfile if word in ("COPY", "RUN") and "--from" not in args]
    first_source = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and "sanitizer/" in a)
    installs = [i for i, (w, a) in enumerate(steps) if w == "RUN" and "-r /tmp/requirements.txt" in a]
    assert installs and installs[0] < first_source, "dependencies must be installed before COPY sanitizer/"
    manifest_copy = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and "pyproject.toml" in a)
    assert manifest_copy < installs[0]
    later = [a for w, a in steps[first_source:] if w == "RUN" and "pip install" in a]
    assert later and all("--no-deps" in a for a in later), "after the source, only the package itself is installed"


def test_the_dependency_layer_installs_every_dependency_and_the_lineage_extra(dockerfile, tmp_path):
    """Run the Dockerfile's own requirements step on this pyproject.toml: every runtime dependency and
    openlineage-python (the workers send the OpenLineage events), nothing else."""
    import re
    import shlex
    import subprocess
    import sys
    import tomllib

    step = next(a for w, a in dockerfile if w == "RUN" and "-r /tmp/requirements.txt" in a)
    command = next(part for part in step.split("&&") if "tomllib" in part)
    code = shlex.split(command.split(">")[0])[2]  # python -c "<code>"
    pyproject = (REPO / "pyproject.toml").read_bytes()
    (tmp_path / "pyproject.toml").write_bytes(pyproject)
    printed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    wanted = tomllib.loads(pyproject.decode())["project"]
    assert printed.stdout.split("\n")[:-1] == wanted["dependencies"] + wanted["optional-dependencies"]["lineage"]
    assert any(re.match(r"openlineage-python\b", line) for line in printed.stdout.splitlines())


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    entries = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for entry in (".git", ".venv", ".venv-airflow", "bench/_data", "demo", "test-artifacts", "**/__pycache__"):
        assert entry in entries, f".dockerignore must exclude {entry}"
    copied = " ".join(a for w, a in instructions(DOCKERFILE.read_text()) if w == "COPY" and "--from" not in a)
    for path in copied.split():
        assert path.rstrip("/") not in entries, f"{path} is copied but ignored"
