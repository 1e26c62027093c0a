"""Reading the project's locks (requirements/*.txt as `make lock` writes them): name -> pin."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
AIRFLOW_LOCK = REPO / "requirements" / "airflow-lock.txt"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]


def read(path: Path = LOCK) -> dict[str, Pin]:
    """Every ``name==version`` entry of a lock, keyed by canonical name, with its ``--hash`` values."""
    text = path.read_text().replace("\\\n", " ")
    pins: dict[str, Pin] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", line)
        assert match, f"{path.name}: not a hashed name==version pin: {line[:120]!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = Pin(name, match[2], tuple(re.findall(r"sha256:([0-9a-f]{64})", match[3])))
    return pins
