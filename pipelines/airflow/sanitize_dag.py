"""Airflow 3 DAG: sanitize training data, stop on a quarantine spike, publish the manifest as an Asset.

    resolve_options ─► sanitize (BeamRunPythonPipelineOperator) ─► quarantine_circuit_breaker ─► Asset
                                                                   (outlet: sanitized_training_manifest)

- ``resolve_options`` reads every setting when the run starts (see Configuration) and picks this
  run's output folder, ``OUTPUT/<run id>``.
- ``sanitize`` runs ``pipelines/sanitize_pipeline.py`` (the ``sanitize run`` entry point) with the
  sanitizer's own interpreter, on the DirectRunner by default or on Dataflow (``runner``
  ``DataflowRunner`` plus the ``dataflow_*`` settings below).
- The run-level guard stops a quarantine spike inside ``sanitize`` itself: a run that would hold more
  than ``max_quarantine_share`` of its labelled rows (default 0.10) or ``max_class_quarantine_share``
  of a class (default 0.30) publishes no manifest and exits 3, so the task fails. A sudden spike
  means the source is compromised or broken, and nothing should be trained on it.
- ``quarantine_circuit_breaker`` reads ``provenance.json`` and ``manifest.json`` through
  :class:`~airflow.sdk.ObjectStoragePath` (local, ``gs://``, ``s3://``; the ``output_conn_id``
  setting names the connection) and fails the run (no retries) unless the guard reading the run
  recorded there passed (the same setting, read back from the run). It also checks that the
  manifest is the one of the provenance it judged (the manifest records the provenance file's
  sha256). A run given a baseline (``baseline``, ``baseline_data``) recorded the drift between the
  baseline and the new data: the breaker fails on a ``critical`` drift verdict (or none recorded) and
  goes ahead on ``warning``, logging each drifted column as a warning. Only when all of that holds does
  the task succeed, and its outlet, the Asset
  ``sanitized_training_manifest`` (``x-sanitizer://sanitize_training_data/manifest.json``), gets an
  asset event whose ``extra`` holds ``manifest`` (the URI), ``manifest_sha256``, ``run_id`` (the
  sanitizer's), ``rows_in``, ``quarantined``, ``rate`` (the guard's share), ``bound``, ``drift``
  (``none``, ``ok`` or ``warning``) and ``drift_alarms`` (the drifted columns and statistics). A
  tripped breaker emits no event.
- Training is its own DAG, ``train_dag.py`` (``train_on_sanitized_data``), scheduled on that Asset:
  it trains from the manifest named by the event and refuses one whose sha256 differs from the
  one approved here.

One active run per output folder: each run writes its own folder, ``OUTPUT/<run id>`` (the DAG run
id with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``), and the DAG has
``max_active_runs=1``. The per-run folder is what makes the hand-off safe: the consumer runs later,
on its own schedule, and reads the folder an event names; if every run replaced one fixed folder, the
next run would delete shards that a training run may still be reading. A retry of the same run reuses
its folder (``--overwrite``, which removes only files a sanitizer run recorded writing there).
``max_active_runs=1`` keeps runs (and a backfill) from running Beam jobs side by side, and makes
asset events arrive in run order, so the newest event is the newest data. Old run folders are not
deleted: expire them with a bucket lifecycle rule or a cleanup job.

Airflow itself needs only ``apache-airflow``, ``apache-airflow-providers-apache-beam`` and
``apache-airflow-providers-google`` (the Beam operator imports it, even for the DirectRunner;
``apache-airflow-providers-amazon[s3fs]`` for an ``s3://`` output); the ``sanitizer`` package lives
in its own environment, named by the ``python`` setting.

Configuration, read at run time, never at parse time: each setting ``NAME`` is the run's param of that
name (``airflow dags trigger sanitize_training_data -c '{"max_quarantine_share": 0.02}'``), else the
Airflow Variable ``sanitizer_NAME`` (``airflow variables set sanitizer_output gs://b/sanitized``, or
``AIRFLOW_VAR_SANITIZER_NAME``, or a secrets backend), else the environment variable
``SANITIZER_NAME`` of the process that runs the task, else the default:

============================  =================================================================
input                         input file, folder or glob (``gs://`` works on Dataflow)
output                        output root; each run writes ``OUTPUT/<run id>/``
label_column                  label column (default ``label``)
id_column, feature_columns, format, config, seed, sample_size, expectations, embedding_model,
embedding_model_sha256,       the ``sanitize run`` options of the same names (params); ``column_kind``
decisions, missing_features,  takes comma-separated ``NAME=KIND`` pairs
column_kind, baseline,
baseline_sha256, baseline_data
max_quarantine_share,         the run-level guard (``sanitize run --max-quarantine-share``,
max_class_quarantine_share    ``--max-class-quarantine-share``; defaults 0.10 and 0.30, or the config's)
runner                        ``DirectRunner`` (default) or ``DataflowRunner`` (or any Beam runner)
beam_options                  extra Beam options, a JSON object (not the runner), e.g.
                              ``{"temp_location": "gs://b/tmp", "sdk_container_image": "REGION-docker.pkg.dev/P/R/sanitizer:TAG"}``
dataflow_project              Dataflow project (default: the google_cloud_default connection's)
dataflow_region               Dataflow region (default ``us-central1``)
output_conn_id                Airflow connection for reading OUTPUT (default: the store's own credentials)
python                        the interpreter that has ``sanitizer`` installed (default: Airflow's own)
pipeline_file                 the pipeline file (default ``../sanitize_pipeline.py`` next to this
                              DAG's folder; the task fails naming this setting when neither exists)
============================  =================================================================

The schedule is the one thing read at parse time (a DAG's schedule is part of its structure):
the environment variable ``SANITIZER_SCHEDULE``, a cron expression or preset; unset = triggered runs only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.sdk import DAG, Param, task

if str(Path(__file__).resolve().parent) not in sys.path:  # the helper module beside this file, wherever
    sys.path.append(str(Path(__file__).resolve().parent))  # in the DAG bundle this folder sits
from sanitizer_dag_common import (
    DRIFT_STOPS,
    MANIFEST_ASSET,
    drift_verdict,
    interpreter,
    json_object,
    manifest_of_provenance,
    quarantine_verdict,
    read_bytes,
    run_folder,
    script,
    setting,
    storage_path,
)

DAG_ID = "sanitize_training_data"
log = logging.getLogger(__name__)

# sanitize run option -> (JSON-schema type of the param, how a Variable / environment value is read)
RUN_OPTIONS: dict[str, tuple[list[str], type]] = {
    "input": (["null", "string"], str),
    "output": (["null", "string"], str),
    "label_column": (["null", "string"], str),
    "id_column": (["null", "string"], str),
    "feature_columns": (["null", "string"], str),
    "column_kind": (["null", "string"], str),  # comma-separated NAME=KIND pairs
    "format": (["null", "string"], str),
    "ignore": (["null", "string"], str),  # comma-separated glob patterns
    "config": (["null", "string"], str),
    "seed": (["null", "integer"], int),
    "sample_size": (["null", "integer"], int),
    "expectations": (["null", "string"], str),
    "embedding_model": (["null", "string"], str),
    "embedding_model_sha256": (["null", "string"], str),
    "decisions": (["null", "string"], str),
    "missing_features": (["null", "string"], str),
    "max_quarantine_share": (["null", "number"], float),
    "max_class_quarantine_share": (["null", "number"], float),
    "baseline": (["null", "string"], str),  # a published run to fit on and measure drift against
    "baseline_sha256": (["null", "string"], str),
    "baseline_data": (["null", "string"], str),
}


def _described(name: str, what: str) -> str:
    return f"{what} (unset: Variable sanitizer_{name}, else ${'SANITIZER_' + name.upper()}, read at run time)"


# Every default is None: the value is resolved when the run starts, not when this file is parsed.
params = {
    name: Param(None, type=types, description=_described(name, f"sanitize run --{name.replace('_', '-')}"))
    for name, (types, _) in RUN_OPTIONS.items()
}
params["runner"] = Param(None, type=["null", "string"],
                         description=_described("runner", "Beam runner: DirectRunner (default) or DataflowRunner"))
params["beam_options"] = Param(None, type=["null", "object"],
                               description=_described("beam_options", "extra Beam pipeline options, a JSON object"))


class SanitizePipelineOperator(BeamRunPythonPipelineOperator):
    """The Beam operator with the interpreter templated too (resolved per run)."""

    template_fields = (*BeamRunPythonPipelineOperator.template_fields, "py_interpreter")


with DAG(
    dag_id=DAG_ID,
    description="Quarantine poisoned training rows (Beam), stop on a quarantine spike, publish the manifest Asset",
    schedule=os.environ.get("SANITIZER_SCHEDULE", "").strip() or None,
    catchup=False,
    max_active_runs=1,  # with the per-run output folder: see "One active run per output folder" above
    params=params,
    tags=["sanitizer", "beam", "ml"],
    doc_md=__doc__,
) as dag:

    @task(multiple_outputs=True)
    def resolve_options(**context) -> dict:
        """Every setting of this run, read now: the pipeline options, interpreter, runner and bound."""
        from airflow.sdk.exceptions import AirflowFailException

        p = context["params"]
        try:
            values = {k: setting(k, p, cast=cast) for k, (_, cast) in RUN_OPTIONS.items()}
            values["label_column"] = values["label_column"] or "label"
            beam_options = setting("beam_options", p, default={}, cast=json_object)
        except ValueError as exc:
            raise AirflowFailException(f"a setting does not parse: {exc}") from exc
        missing = [k for k in ("input", "output") if not values.get(k)]
        if missing:
            raise AirflowFailException("set " + ", ".join(
                f"{k} (param, Variable sanitizer_{k} or SANITIZER_{k.upper()})" for k in missing))
        for name in ("max_quarantine_share", "max_class_quarantine_share"):
            if values.get(name) is not None and not 0 <= values[name] <= 1:
                raise AirflowFailException(f"{name} {values[name]} is not a share between 0 and 1")
        options = {k: v for k, v in values.items() if v not in (None, "")}
        root = str(options.pop("output")).rstrip("/")
        options["output"] = f"{root}/{run_folder(context['run_id'])}"  # this run's own folder
        options["overwrite"] = True  # a retry of this run replaces its own earlier attempt
        options.update(beam_options)
        try:
            pipeline_file = script(p, "pipeline_file", "sanitize_pipeline.py")
        except FileNotFoundError as exc:
            raise AirflowFailException(str(exc)) from exc
        print(f"this run writes {options['output']}; guard bounds: "
              f"{values.get('max_quarantine_share') or 'the config / default 0.10'} of rows, "
              f"{values.get('max_class_quarantine_share') or 'the config / default 0.30'} of a class")
        return {
            "pipeline_options": options,
            "output": options["output"],
            "runner": str(setting("runner", p, default="DirectRunner")),
            "python": interpreter(p),
            "pipeline_file": pipeline_file,
            "output_conn_id": setting("output_conn_id", p),
            "dataflow_config": {
                "job_name": "sanitize-training-data",  # Airflow appends a unique suffix
                "project_id": setting("dataflow_project", p),
                "location": setting("dataflow_region", p, default="us-central1"),
                "wait_until_finished": True,
            },
        }

    resolved = resolve_options()

    sanitize = SanitizePipelineOperator(
        task_id="sanitize",
        py_file=resolved["pipeline_file"],
        py_interpreter=resolved["python"],
        runner=resolved["runner"],
        pipeline_options=resolved["pipeline_options"],
        dataflow_config=resolved["dataflow_config"],
    )

    @task(outlets=[MANIFEST_ASSET])
    def quarantine_circuit_breaker(out: str, conn_id: str | None, **context) -> dict:
        """Fail the run (no retries) on a quarantine spike, a critical drift or a missing/foreign manifest; else
        emit the asset event (a drift marked warning is logged and named in it)."""
        from airflow.sdk.exceptions import AirflowFailException

        folder = storage_path(out, conn_id)
        provenance_raw = read_bytes(folder / "provenance.json")
        if provenance_raw is None:
            raise AirflowFailException(f"no provenance at {out}/provenance.json: the sanitize run did not finish")
        provenance = json.loads(provenance_raw)
        ok, rate, bound, explanation = quarantine_verdict(provenance)
        if not ok:
            raise AirflowFailException(f"quarantine circuit breaker tripped: {explanation}. "
                                       f"Review {out}/quarantine/ before training on this data")
        drift, drift_text = drift_verdict(provenance)
        if drift in DRIFT_STOPS:
            raise AirflowFailException(f"drift circuit breaker tripped: {drift_text}. Every column's scores are in "
                                       f"{out}/provenance.json (drift) and {out}/report.html")
        if drift == "warning":
            log.warning("training goes ahead on drifted data: %s. See the Drift section of %s/report.html",
                        drift_text, out)
        manifest_raw = read_bytes(folder / "manifest.json")
        if manifest_raw is None:
            raise AirflowFailException(f"no manifest at {out}/manifest.json: the run published nothing")
        mismatch = manifest_of_provenance(manifest_raw, provenance_raw)
        if mismatch:
            raise AirflowFailException(f"{out}/manifest.json is not the manifest of the run just checked: {mismatch}")
        manifest_sha256 = hashlib.sha256(manifest_raw).hexdigest()
        print(f"quarantine circuit breaker passed: {explanation}; {drift_text}; manifest sha256 {manifest_sha256}")
        approved = {"manifest": f"{out}/manifest.json", "manifest_sha256": manifest_sha256,
                    "run_id": provenance.get("run_id"), "rows_in": provenance["counts"]["rows_in"],
                    "quarantined": provenance["counts"]["quarantined"], "rate": rate, "bound": bound,
                    "drift": drift, "drift_alarms": [f"{a.get('column')}: {a.get('statistic')}"
                                                     for a in (provenance.get("drift") or {}).get("alarms") or []]}
        # The asset event: what the training DAG trains from (and the only sha256 it accepts).
        context["outlet_events"][MANIFEST_ASSET].extra = approved
        return approved

    verdict = quarantine_circuit_breaker(resolved["output"], resolved["output_conn_id"])

    sanitize >> verdict
