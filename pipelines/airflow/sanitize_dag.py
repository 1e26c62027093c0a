"""Airflow 3 DAG: sanitize training data, stop on a quarantine spike, then train from the manifest.

    resolve_options ─► sanitize (BeamRunPythonPipelineOperator) ─► quarantine_circuit_breaker ─► train

- ``sanitize`` runs ``pipelines/sanitize_pipeline.py`` (the ``sanitize run``
  entry point) with the sanitizer's own interpreter, on the DirectRunner by
  default or on Dataflow (``SANITIZER_RUNNER=DataflowRunner`` plus the
  ``SANITIZER_DATAFLOW_*`` settings below).
- ``quarantine_circuit_breaker`` reads ``OUT/provenance.json`` and fails the
  run (no retries) when ``counts.quarantined / counts.rows_in`` exceeds
  ``max_quarantine_rate``: a sudden spike in quarantined rows means the source
  is compromised or broken, and nothing should be trained on it. It also checks
  that ``OUT/manifest.json`` is the manifest of the provenance it judged (the
  manifest records the provenance file's sha256) and returns the manifest's own
  sha256 (XCom ``manifest_sha256``).
- ``train`` runs ``pipelines/train_example.py`` with the sanitizer's
  interpreter and ``--manifest-sha256`` from the breaker's XCom: it loads the
  clean shards through that exact manifest (a manifest changed after the check,
  say by another run writing the same output, is refused; every shard is
  sha256-verified on the bytes that are parsed) and writes ``OUT/model-metrics.json``.

Airflow itself needs only ``apache-airflow``, ``apache-airflow-providers-apache-beam``
and ``apache-airflow-providers-google`` (the Beam operator imports it, even for the
DirectRunner); the ``sanitizer`` package lives in its own environment, named by
``SANITIZER_PYTHON``.

Configuration: every DAG param below can be set when triggering
(``airflow dags trigger sanitize_training_data -c '{"max_quarantine_rate": 0.02}'``);
its default comes from the environment of the process that parses the DAG:

================================  ==============================================================
SANITIZER_INPUT                   input file, folder or glob (``gs://`` works on Dataflow)
SANITIZER_OUTPUT                  output folder; the DAG owns it (each run replaces the last one)
SANITIZER_LABEL_COLUMN            label column (default ``label``)
SANITIZER_ID_COLUMN, SANITIZER_FEATURE_COLUMNS, SANITIZER_FORMAT, SANITIZER_CONFIG,
SANITIZER_SEED, SANITIZER_SAMPLE_SIZE, SANITIZER_EXPECTATIONS, SANITIZER_EMBEDDING_MODEL,
SANITIZER_DECISIONS               the ``sanitize run`` options of the same names
SANITIZER_MAX_QUARANTINE_RATE     circuit-breaker bound, a share of input rows (default 0.2)
SANITIZER_RUNNER                  ``DirectRunner`` (default) or ``DataflowRunner`` (or any Beam runner)
SANITIZER_BEAM_OPTIONS            extra Beam options as a JSON object (not the runner), e.g.
                                  ``{"temp_location": "gs://b/tmp", "sdk_container_image": "REGION-docker.pkg.dev/P/R/sanitizer:TAG"}``
SANITIZER_DATAFLOW_PROJECT        Dataflow project (default: the google_cloud_default connection's)
SANITIZER_DATAFLOW_REGION         Dataflow region (default ``us-central1``)
SANITIZER_PYTHON                  the interpreter that has ``sanitizer`` installed (default: Airflow's own)
SANITIZER_PIPELINE_FILE           the pipeline file (default ``../sanitize_pipeline.py`` next to this
                                  DAG's folder, else ``python -m pipelines.sanitize_pipeline``)
SANITIZER_TRAIN_SCRIPT            the training script (default ``../train_example.py``, likewise)
SANITIZER_SCHEDULE                a cron expression or preset; unset = triggered runs only
================================  ==============================================================
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, task

DAG_ID = "sanitize_training_data"
HERE = Path(__file__).resolve().parent

# sanitize run option -> (environment variable, JSON-schema type of the param)
RUN_OPTIONS: dict[str, tuple[str, list[str]]] = {
    "input": ("SANITIZER_INPUT", ["null", "string"]),
    "output": ("SANITIZER_OUTPUT", ["null", "string"]),
    "label_column": ("SANITIZER_LABEL_COLUMN", ["null", "string"]),
    "id_column": ("SANITIZER_ID_COLUMN", ["null", "string"]),
    "feature_columns": ("SANITIZER_FEATURE_COLUMNS", ["null", "string"]),
    "format": ("SANITIZER_FORMAT", ["null", "string"]),
    "config": ("SANITIZER_CONFIG", ["null", "string"]),
    "seed": ("SANITIZER_SEED", ["null", "integer"]),
    "sample_size": ("SANITIZER_SAMPLE_SIZE", ["null", "integer"]),
    "expectations": ("SANITIZER_EXPECTATIONS", ["null", "string"]),
    "embedding_model": ("SANITIZER_EMBEDDING_MODEL", ["null", "string"]),
    "decisions": ("SANITIZER_DECISIONS", ["null", "string"]),
}


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value if value else default


def _env_typed(name: str, types: list[str]):
    value = _env(name)
    if value is not None and "integer" in types:
        return int(value)
    return value


def _script(env_name: str, filename: str, module: str) -> tuple[str, list[str]]:
    """(file or module, python options): an explicit path, the file beside this DAG's folder, or ``-m``."""
    explicit = _env(env_name)
    if explicit:
        return explicit, []
    beside = HERE.parent / filename
    if beside.is_file():
        return str(beside), []
    return module, ["-m"]  # the installed ``pipelines`` package


SANITIZER_PYTHON = _env("SANITIZER_PYTHON", sys.executable)
PIPELINE_FILE, PIPELINE_PY_OPTIONS = _script("SANITIZER_PIPELINE_FILE", "sanitize_pipeline.py",
                                             "pipelines.sanitize_pipeline")
TRAIN_SCRIPT, TRAIN_PY_OPTIONS = _script("SANITIZER_TRAIN_SCRIPT", "train_example.py", "pipelines.train_example")

params = {
    name: Param(_env_typed(env, types), type=types, description=f"sanitize run --{name.replace('_', '-')} "
                f"(default from {env})")
    for name, (env, types) in RUN_OPTIONS.items()
}
params["label_column"] = Param(_env("SANITIZER_LABEL_COLUMN", "label"), type="string",
                               description="sanitize run --label-column (default from SANITIZER_LABEL_COLUMN)")
params["max_quarantine_rate"] = Param(
    float(_env("SANITIZER_MAX_QUARANTINE_RATE", "0.2")), type="number", minimum=0, maximum=1,
    description="fail the run when quarantined / input rows exceeds this share (SANITIZER_MAX_QUARANTINE_RATE)",
)
params["runner"] = Param(_env("SANITIZER_RUNNER", "DirectRunner"), type="string",
                         description="Beam runner: DirectRunner or DataflowRunner (SANITIZER_RUNNER)")
params["beam_options"] = Param(json.loads(_env("SANITIZER_BEAM_OPTIONS", "{}")), type="object",
                               description="extra Beam pipeline options (SANITIZER_BEAM_OPTIONS, a JSON object)")


def read_bytes(uri: str) -> bytes | None:
    """A small file's bytes from a local path or gs:// URI; None when it does not exist."""
    if uri.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, _, name = uri[len("gs://"):].partition("/")
        hook = GCSHook()
        if not hook.exists(bucket, name):
            return None
        return hook.download(bucket, name)
    path = Path(uri)
    return path.read_bytes() if path.is_file() else None


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


def quarantine_verdict(provenance: dict, bound: float) -> tuple[bool, float, str]:
    """(ok, rate, explanation) for a run's provenance against a quarantine-rate bound."""
    counts = provenance.get("counts") or {}
    rows_in = int(counts.get("rows_in") or 0)
    quarantined = int(counts.get("quarantined") or 0)
    if rows_in <= 0:
        return False, 1.0, "the run read no rows"
    rate = quarantined / rows_in
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted((counts.get("by_reason") or {}).items(),
                                                           key=lambda kv: -kv[1])[:5])
    text = (f"{quarantined:,} of {rows_in:,} rows quarantined ({rate:.2%}); bound {bound:.2%}"
            + (f"; top reasons: {by_reason}" if by_reason else ""))
    return rate <= bound, rate, text


with DAG(
    dag_id=DAG_ID,
    description="Quarantine poisoned training rows (Beam), stop on a quarantine spike, train from the manifest",
    schedule=_env("SANITIZER_SCHEDULE"),
    catchup=False,
    params=params,
    tags=["sanitizer", "beam", "ml"],
    doc_md=__doc__,
) as dag:

    @task
    def resolve_options(**context) -> dict:
        """The pipeline options for this run: the ``sanitize run`` params that are set, plus Beam options."""
        p = context["params"]
        missing = [k for k in ("input", "output", "label_column") if not p.get(k)]
        if missing:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                "set " + ", ".join(f"{k} (param or {RUN_OPTIONS[k][0]})" for k in missing)
            )
        options = {k: p[k] for k in RUN_OPTIONS if p.get(k) not in (None, "")}
        options["output"] = str(options["output"]).rstrip("/")
        options["overwrite"] = True  # the DAG owns its output folder: a retry or the next run replaces it
        options.update(p.get("beam_options") or {})
        return options

    options = resolve_options()

    sanitize = BeamRunPythonPipelineOperator(
        task_id="sanitize",
        py_file=PIPELINE_FILE,
        py_options=PIPELINE_PY_OPTIONS,
        py_interpreter=SANITIZER_PYTHON,
        runner="{{ params.runner }}",
        pipeline_options=options,  # resolved at run time from resolve_options' XCom
        dataflow_config={
            "job_name": "sanitize-training-data",  # Airflow appends a unique suffix
            "project_id": _env("SANITIZER_DATAFLOW_PROJECT"),
            "location": _env("SANITIZER_DATAFLOW_REGION", "us-central1"),
            "wait_until_finished": True,
        },
    )

    @task
    def quarantine_circuit_breaker(options: dict, **context) -> dict:
        """Fail the run (no retries) when the quarantine rate exceeds the bound, or nothing was published."""
        from airflow.sdk.exceptions import AirflowFailException

        out = options["output"]
        bound = float(context["params"]["max_quarantine_rate"])
        provenance_raw = read_bytes(f"{out}/provenance.json")
        if provenance_raw is None:
            raise AirflowFailException(f"no provenance at {out}/provenance.json: the sanitize run did not finish")
        provenance = json.loads(provenance_raw)
        ok, rate, explanation = quarantine_verdict(provenance, bound)
        if not ok:
            raise AirflowFailException(f"quarantine circuit breaker tripped: {explanation}. "
                                       f"Review {out}/quarantine/ before training on this data")
        manifest_raw = read_bytes(f"{out}/manifest.json")
        if manifest_raw is None:
            raise AirflowFailException(f"no manifest at {out}/manifest.json: the run published nothing")
        mismatch = manifest_of_provenance(manifest_raw, provenance_raw)
        if mismatch:
            raise AirflowFailException(f"{out}/manifest.json is not the manifest of the run just checked: {mismatch}")
        manifest_sha256 = hashlib.sha256(manifest_raw).hexdigest()
        print(f"quarantine circuit breaker passed: {explanation}; manifest sha256 {manifest_sha256}")
        # train loads exactly this manifest (--manifest-sha256): one changed after this check is refused.
        return {"run_id": provenance.get("run_id"), "rows_in": provenance["counts"]["rows_in"],
                "quarantined": provenance["counts"]["quarantined"], "rate": rate, "bound": bound,
                "manifest": f"{out}/manifest.json", "manifest_sha256": manifest_sha256,
                "metrics": f"{out}/model-metrics.json"}

    verdict = quarantine_circuit_breaker(options)

    train = BashOperator(
        task_id="train",
        bash_command=('"$SANITIZER_PYTHON" $TRAIN_PY_OPTIONS "$TRAIN_SCRIPT" --manifest "$MANIFEST" '
                      '--manifest-sha256 "$MANIFEST_SHA256" --metrics "$METRICS"'),
        env={
            "SANITIZER_PYTHON": SANITIZER_PYTHON,
            "TRAIN_PY_OPTIONS": " ".join(TRAIN_PY_OPTIONS),
            "TRAIN_SCRIPT": TRAIN_SCRIPT,
            "MANIFEST": "{{ ti.xcom_pull(task_ids='quarantine_circuit_breaker')['manifest'] }}",
            "MANIFEST_SHA256": "{{ ti.xcom_pull(task_ids='quarantine_circuit_breaker')['manifest_sha256'] }}",
            "METRICS": "{{ ti.xcom_pull(task_ids='quarantine_circuit_breaker')['metrics'] }}",
        },
        append_env=True,
    )

    options >> sanitize >> verdict >> train
