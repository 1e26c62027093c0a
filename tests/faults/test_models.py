"""Fault injection: an embedding model is code, and runs only when the user has pinned its sha256.

Issue 30, case 6: a TorchScript backbone whose scripted ``forward`` maps a file with
``torch.from_file(path, shared=True)`` and ``fill_``s it overwrote any file the run could write,
because planning loaded the model and ran it on a test batch. Now a model whose sha256 is not
pinned (``--embedding-model-sha256`` or ``detectors.feature_collision.embedding_model_sha256``)
is refused before its bytes reach ``torch.jit.load``, naming the file and its actual sha256; a
different pin is refused too. With the right pin the model is the user's trusted code and runs
with the user's rights, as the trust model says.

The evil model is built here, for real, with torch on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import load_json, run_cli, sha256_file, write_digits_parquet
from torch import nn

PRECIOUS = b"the user's precious data\n"


class _Evil(nn.Module):
    """Returns its input as the embedding; on the way, overwrites the first bytes of ``target``."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x):
        t = torch.from_file(self.target, shared=True, size=8, dtype=torch.uint8)
        t.fill_(33)  # "!!!!!!!!"
        return x + t[:1].to(x.dtype) * 0.0  # uses t, so the compiler keeps the write


@pytest.fixture()
def evil(tmp_path, digits):
    X, y = digits
    target = tmp_path / "victim.txt"
    target.write_bytes(PRECIOUS)
    model = tmp_path / "evil.pt"
    torch.jit.save(torch.jit.script(_Evil(str(target))), str(model))
    data = write_digits_parquet(tmp_path / "digits.parquet", X[:200], y[:200],
                                [f"digit-{i:05d}" for i in range(200)])
    return {"target": target, "model": str(model), "data": data, "out": tmp_path / "out"}


def _run(evil, *extra) -> int:
    return run_cli("run", "--input", evil["data"], "--output", evil["out"], "--label-column", "label",
                   "--id-column", "image_id", "--embedding-model", evil["model"], "-q", *extra)


def _refused(capsys, evil) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.startswith("sanitize: error:") and len(err.strip().splitlines()) == 1, err
    assert evil["target"].read_bytes() == PRECIOUS, "the model ran"
    assert not evil["out"].exists() or not any(evil["out"].iterdir()), "a refused run wrote output"
    return err


def test_an_unpinned_model_is_refused_before_it_runs(evil, capsys):
    rc = _run(evil)
    err = _refused(capsys, evil)
    assert rc == 2, err
    sha = sha256_file(evil["model"])
    assert evil["model"] in err and sha in err, err
    assert f"--embedding-model-sha256 {sha}" in err and "embedding_model_sha256" in err, err


def test_a_model_that_is_not_the_pinned_one_is_refused(evil, capsys):
    pinned = "ab" * 32
    rc = _run(evil, "--embedding-model-sha256", pinned)
    err = _refused(capsys, evil)
    assert rc == 2, err
    assert evil["model"] in err and sha256_file(evil["model"]) in err and pinned in err, err


@pytest.mark.parametrize("pin", ["not-a-sha", "a" * 63, "g" * 64])
def test_a_malformed_pin_is_refused(evil, capsys, pin):
    rc = _run(evil, "--embedding-model-sha256", pin)
    err = _refused(capsys, evil)
    assert rc == 2 and "embedding_model_sha256 must be a sha256" in err, err


def test_a_pinned_model_is_trusted_code_and_runs_with_the_users_rights(evil, tmp_path, capsys):
    """The pin is the user's word that the file is theirs to run: it runs, side effects and all, and
    provenance records the pin. (This is why the trust model says to pin only code you trust.)"""
    sha = sha256_file(evil["model"])
    config = tmp_path / "config.yaml"
    config.write_text(
        "detectors:\n"
        f"  feature_collision: {{embedding_model_sha256: '{sha.upper()}'}}\n"
        "  outlier: {enabled: false}\n  label_flip: {enabled: false}\n  backdoor: {enabled: false}\n"
        "guard: {max_quarantine_share: 1.0, max_class_quarantine_share: 1.0}\n"
    )
    rc = _run(evil, "--config", config)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert evil["target"].read_bytes() == b"!" * 8 + PRECIOUS[8:]
    prov = load_json(Path(evil["out"]) / "provenance.json")
    assert prov["config"]["detectors"]["feature_collision"]["embedding_model_sha256"] == sha.upper()
    embedding = prov["detectors"]["feature_collision"]["embedding"]
    assert embedding["source"] == "torchscript" and embedding["sha256"] == sha
