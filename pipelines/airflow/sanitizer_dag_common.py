"""What the sanitizer's two DAGs share: the manifest Asset, run-time settings, object storage, the verdicts.

Not a DAG. ``sanitize_dag.py`` (the producer) and ``train_dag.py`` (the consumer) import it from
their own folder (each puts that folder on the import path: Airflow adds only the DAG bundle's root,
and the three files may sit in a subfolder of it); copy it along with them.

Settings are read when a task runs, never when the DAG file is parsed (the DAG processor parses
every file every few seconds, and a Variable read there is a metadata-database or secrets-backend
call each time; a task also sees the settings of the moment it runs, not of the last parse).
:func:`setting` looks, in order, at the run's param (trigger conf), the Airflow Variable
``sanitizer_<name>`` (which also covers ``AIRFLOW_VAR_SANITIZER_<NAME>`` and any secrets backend),
the environment variable ``SANITIZER_<NAME>`` of the process running the task, then the default.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, ObjectStoragePath

HERE = Path(__file__).resolve().parent

# The published, circuit-breaker-approved manifest. One logical asset: each run writes its own
# folder, so the concrete manifest URI (and its sha256) travels in every asset event's ``extra``.
MANIFEST_ASSET = Asset(
    name="sanitized_training_manifest",
    uri="x-sanitizer://sanitize_training_data/manifest.json",
    group="sanitizer",
)


def setting(name: str, params: Mapping[str, Any] | None = None, default: Any = None,
            cast: Callable[[str], Any] | None = None) -> Any:
    """A setting as the running task sees it: param, Variable ``sanitizer_<name>``, ``SANITIZER_<NAME>``, default."""
    value = (params or {}).get(name)
    if value is not None and value != "":
        return value
    from airflow.sdk import Variable

    text = Variable.get(f"sanitizer_{name}", default=None)
    if text is None or not str(text).strip():
        text = os.environ.get(f"SANITIZER_{name.upper()}", "")
    text = str(text).strip()
    if not text:
        return default
    return cast(text) if cast else text


def json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")  # noqa: TRY004 - a bad setting, caught as one
    return value


def script(params: Mapping[str, Any] | None, name: str, filename: str) -> str:
    """The file a task runs: the ``name`` setting, else ``filename`` in the folder above the DAG folder.

    The sanitizer's wheel installs the ``sanitizer`` package only (``pipelines/`` is not a package), so
    when neither exists the task fails here, naming the setting to set, instead of starting a Python
    that cannot find its script.
    """
    explicit = setting(name, params)
    if explicit:
        return str(explicit)
    beside = HERE.parent / filename
    if beside.is_file():
        return str(beside)
    raise FileNotFoundError(
        f"no {filename}: {beside} does not exist and the setting {name} is unset; set the param {name}, the "
        f"Variable sanitizer_{name} or SANITIZER_{name.upper()} to the path of pipelines/{filename} from the "
        "sanitizer's repository (or deploy that pipelines/ folder with the DAGs)")


def interpreter(params: Mapping[str, Any] | None = None) -> str:
    """The interpreter that has ``sanitizer`` installed (setting ``python``; default: the task's own)."""
    return str(setting("python", params, default=sys.executable))


def run_folder(run_id: str) -> str:
    """A folder name for a DAG run id (``manual__2026-01-01T00:00:00+00:00`` -> ``manual__2026-01-01T00-00-00-00-00``).

    Only letters, digits, ``.``, ``_`` and ``-`` are kept: ``:`` and ``+`` are legal in object names but
    not in every tool's glob or URL handling.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.")
    if not name:
        raise ValueError(f"run id {run_id!r} gives no folder name")
    return name


def storage_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """An :class:`ObjectStoragePath` for a local path, ``file://``, ``gs://``, ``s3://``, ... URI.

    ``conn_id`` names the Airflow connection for the store; None uses the filesystem's own default
    credentials (application default credentials for ``gs://``, the AWS chain for ``s3://``).
    """
    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


def read_bytes(path: ObjectStoragePath) -> bytes | None:
    """A small file's bytes, None when it does not exist. A missing filesystem says what to install."""
    try:
        if not path.exists():
            return None
        return path.read_bytes()
    except ImportError as exc:  # s3fs, gcsfs, adlfs... not installed
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"cannot read {path}: {exc}. Install the Airflow provider for {path.protocol}:// "
            "(apache-airflow-providers-amazon[s3fs] for s3://, apache-airflow-providers-google for gs://)"
        ) from exc


def manifest_of_provenance(manifest_raw: bytes, provenance_raw: bytes) -> str | None:
    """Why the manifest is not the one published with this provenance, or None when it is.

    The manifest records the sha256 of the provenance.json written before it; a manifest that names
    another provenance belongs to another run, and the verdict on this provenance says nothing about it.
    """
    try:
        manifest = json.loads(manifest_raw)
        recorded = manifest["provenance"]["sha256"]
    except (ValueError, KeyError, TypeError):
        return "it is not a sanitizer manifest (no provenance.sha256)"
    actual = hashlib.sha256(provenance_raw).hexdigest()
    if recorded != actual:
        return (f"it records provenance sha256 {recorded}, but the provenance checked has sha256 {actual} "
                "(another run wrote the folder in between)")
    return None


def quarantine_verdict(provenance: dict) -> tuple[bool, float, float, str]:
    """(ok, share, bound, explanation): the run-level guard's reading recorded in a run's provenance.

    The sanitize run enforces ``guard.max_quarantine_share`` and ``guard.max_class_quarantine_share``
    itself (a run over either publishes no manifest and exits 3); the breaker reads the same reading
    back, so a provenance that is missing it, or one whose guard tripped, never reaches training.
    """
    counts = provenance.get("counts") or {}
    guard = provenance.get("guard")
    if int(counts.get("rows_in") or 0) <= 0:
        return False, 1.0, 0.0, "the run read no rows"
    if not isinstance(guard, dict) or "share" not in guard:
        return False, 1.0, 0.0, "the provenance holds no guard reading (written by a sanitizer without the guard)"
    share, bound = float(guard["share"]), float(guard["max_quarantine_share"])
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted((counts.get("by_reason") or {}).items(),
                                                           key=lambda kv: -kv[1])[:5])
    classes = ", ".join(f"{c['class']!r} {c['share']:.1%}" for c in guard.get("classes_over") or [])
    text = (f"{guard.get('quarantined', 0):,} of {guard.get('rows', 0):,} labelled rows quarantined ({share:.2%}); "
            f"bound {bound:.2%}, per class {float(guard.get('max_class_quarantine_share', 1)):.0%}"
            + (f"; classes over it: {classes}" if classes else "")
            + (f"; top reasons: {by_reason}" if by_reason else ""))
    return not guard.get("tripped") and share <= bound, share, bound, text


DRIFT_STOPS = ("critical", "missing")  # drift verdicts that stop training


def drift_verdict(provenance: dict) -> tuple[str, str]:
    """(verdict, explanation): the drift between the run's baseline and its new data, as the run recorded it.

    ``none`` when the run had no baseline; else the recorded verdict, ``ok``, ``warning`` (published: the
    drifted columns are marked warning) or ``critical`` (a column marked critical drifted; the run itself
    publishes nothing then), or ``missing`` when a run with a baseline recorded no verdict. Training goes
    ahead on ``none``, ``ok`` and ``warning``; the explanation names each alarm.
    """
    baseline = provenance.get("baseline")
    drift = provenance.get("drift")
    if not isinstance(baseline, dict):
        return "none", "the run had no baseline, so no drift was measured"
    source = baseline.get("run_id") or baseline.get("path") or "?"
    if not isinstance(drift, dict) or drift.get("verdict") not in ("ok", "warning", "critical"):
        return "missing", f"the run had baseline {source} but its provenance records no drift verdict"
    alarms = [a for a in drift.get("alarms") or [] if isinstance(a, dict)]
    named = "; ".join(f"{a.get('column')} {a.get('statistic')} {float(a.get('value') or 0):.3g} > "
                      f"{float(a.get('threshold') or 0):.3g} ({a.get('severity')})" for a in alarms[:10])
    more = f" and {len(alarms) - 10} more" if len(alarms) > 10 else ""
    text = (f"drift against baseline {source}: {drift['verdict']}, {len(alarms)} alarm(s)"
            + (f": {named}{more}" if alarms else ""))
    return str(drift["verdict"]), text
