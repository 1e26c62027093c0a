"""The lock (requirements/lock.txt) is the one set every project environment installs.

`make lock` writes it from pyproject.toml (uv pip compile); `make demo`, `make test`, CI and the
Docker image install from it. These tests keep the three in step: every requirement the project
declares is locked at a version its range admits, every pin carries hashes, the environment the
tests run in is exactly the lock, and the Airflow test environment's lock agrees with it on every
package the two share.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import lockfile
from lockfile import AIRFLOW_LOCK, LOCK, REPO

# What the lock is resolved for (Makefile UV_TARGET): markers are evaluated there.
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython"}
LOCKED_EXTRAS = ("test", "bench", "lineage")  # Makefile LOCK_EXTRAS


@pytest.fixture(scope="module")
def pins() -> dict[str, lockfile.Pin]:
    return lockfile.read(LOCK)


def requirement_lines(path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for everything the lock must cover, in force on the lock's platform."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = [("dependencies", Requirement(r)) for r in project["project"]["dependencies"]]
    for extra in LOCKED_EXTRAS:
        found += [(f"[{extra}]", Requirement(r)) for r in project["project"]["optional-dependencies"][extra]]
    found += [("build-system.requires", Requirement(r)) for r in project["build-system"]["requires"]]
    for name in ("tools.in", "pins.txt"):
        found += [(f"requirements/{name}", Requirement(r)) for r in requirement_lines(REPO / "requirements" / name)]
    return [(where, req) for where, req in found if req.marker is None or req.marker.evaluate(TARGET)]


def test_every_declared_requirement_is_locked_at_a_version_its_range_admits(pins):
    problems = []
    for where, req in declared():
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req} ({where}) is not in the lock")
        elif not req.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(f"{req} ({where}) does not admit the locked {pin.name}=={pin.version}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_every_pin_carries_hashes():
    for path in (LOCK, AIRFLOW_LOCK):
        unhashed = [pin.name for pin in lockfile.read(path).values() if not pin.hashes]
        assert not unhashed, f"{path.name}: pins without --hash: {unhashed}"


def test_the_constraints_file_is_the_lock_without_its_hashes(pins):
    """requirements/constraints.txt (for `pip install -c` beside a local folder) pins the same set."""
    text = (REPO / "requirements" / "constraints.txt").read_text()
    assert "--hash" not in text
    stated = {}
    for line in requirement_lines(REPO / "requirements" / "constraints.txt"):
        name, _, version = line.partition("==")
        stated[canonicalize_name(name)] = version
    assert stated == {name: pin.version for name, pin in pins.items()}, "run `make lock`"


def test_torch_is_locked_to_the_cpu_build(pins):
    assert re.fullmatch(r"\d+\.\d+\.\d+\+cpu", pins["torch"].version), pins["torch"].version


def test_the_test_environment_is_exactly_the_lock(pins):
    """What `make test` installed is what the lock says: a stale or hand-edited environment fails here."""
    wrong = []
    for pin in pins.values():
        try:
            have = metadata.version(pin.name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{pin.name}=={pin.version} is not installed")
            continue
        if Version(have) != Version(pin.version):
            wrong.append(f"{pin.name}: installed {have}, locked {pin.version}")
    assert not wrong, f"{sys.prefix} is not the lock; rebuild it with `make install -B`:\n" + "\n".join(wrong)


def test_make_installs_the_lock_with_hashes_and_the_package_without_resolving():
    printed = subprocess.run(["make", "-n", "-B", "install"], cwd=REPO, capture_output=True, text=True, check=True)
    lines = printed.stdout.splitlines()
    lock_install = [line for line in lines if "pip install" in line and "-r requirements/lock.txt" in line]
    assert lock_install and "--require-hashes" in lock_install[0] and "--no-deps" in lock_install[0], lines
    package = [line for line in lines if re.search(r"pip install .*-e \.$", line)]
    assert package and "--no-deps" in package[0] and "--no-build-isolation" in package[0], lines
    assert any("pip check" in line for line in lines), "the install must end with `pip check`"
    assert "make test" in (REPO / ".ci" / "run").read_text(), "CI must run the README's test command"


def test_the_airflow_lock_agrees_with_the_project_lock(pins):
    airflow = lockfile.read(AIRFLOW_LOCK)
    differ = [f"{name}: {pins[name].version} vs {pin.version}" for name, pin in airflow.items()
              if name in pins and pins[name].version != pin.version]
    assert not differ, f"shared packages differ between the locks (run `make lock`): {differ}"
    for line in requirement_lines(REPO / "requirements" / "airflow.in"):
        req = Requirement(line)
        pin = airflow.get(canonicalize_name(req.name))
        assert pin and req.specifier.contains(Version(pin.version)), f"{req} is not what airflow-lock.txt pins"
    assert "apache-beam" in airflow, "the Airflow environment's Beam comes from the lock"
