"""Airflow 3 DAG: train a model whenever the sanitize DAG publishes an approved manifest.

    [Asset sanitized_training_manifest] ─► locate_manifest ─► train

Scheduled on the Asset that ``sanitize_dag.py``'s quarantine circuit breaker updates
(``schedule=[MANIFEST_ASSET]``): a run starts after each sanitize run whose breaker passed, and never
after one that tripped (a tripped breaker emits no asset event).

- ``locate_manifest`` takes the manifest URI and its approved sha256 from the asset event: the
  newest event that triggered this run, or, for a run started by hand (``airflow dags trigger``,
  ``airflow dags test``), the newest event of the Asset (``inlet_events``); no event yet fails the run.
- ``train`` runs ``pipelines/train_example.py`` with the sanitizer's interpreter and
  ``--manifest-sha256``: it loads the clean shards through ``sanitizer.training.load_manifest``
  (every shard sha256-verified on the bytes that are parsed), refuses a manifest whose bytes are not
  the ones the breaker approved, and writes ``model-metrics.json`` beside the manifest.
  ``locate_manifest`` prints the drift verdict the breaker passed (``none``, ``ok``, or ``warning``
  with the drifted columns) so the training log says what the model was trained on.

Several events queued before a run starts are trained as one: the newest manifest wins (each
sanitize run writes its own folder, so an older one stays readable by hand).

Settings, read at run time like the sanitize DAG's (Variable ``sanitizer_NAME``, else
``SANITIZER_NAME``): ``python`` (the interpreter that has ``sanitizer``), ``train_script`` (default
``../train_example.py`` beside this DAG's folder; the task fails naming the setting when neither exists).
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

if str(Path(__file__).resolve().parent) not in sys.path:  # the helper module beside this file, wherever
    sys.path.append(str(Path(__file__).resolve().parent))  # in the DAG bundle this folder sits
from sanitizer_dag_common import MANIFEST_ASSET, interpreter, script

DAG_ID = "train_on_sanitized_data"

with DAG(
    dag_id=DAG_ID,
    description="Train from each manifest the sanitize DAG's circuit breaker approves",
    schedule=[MANIFEST_ASSET],
    catchup=False,
    tags=["sanitizer", "ml"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[MANIFEST_ASSET])
    def locate_manifest(**context) -> dict:
        """The approved manifest to train from: the triggering asset event, else the Asset's newest event."""
        from airflow.sdk.exceptions import AirflowFailException

        events = list(context["triggering_asset_events"].get(MANIFEST_ASSET, []))
        how = "triggering asset event"
        if not events:
            events = list(context["inlet_events"][MANIFEST_ASSET].ascending(False).limit(1))
            how = "newest asset event (run not triggered by the Asset)"
        if not events:
            raise AirflowFailException(f"no asset event for {MANIFEST_ASSET.name} yet: run sanitize_training_data "
                                       "until its circuit breaker passes")
        event = max(events, key=lambda e: e.timestamp)
        extra = event.extra or {}
        if not extra.get("manifest") or not extra.get("manifest_sha256"):
            raise AirflowFailException(f"the asset event from {event.source_dag_id} run {event.source_run_id} "
                                       "names no manifest and sha256")
        manifest = str(extra["manifest"])
        print(f"training from {manifest} (manifest sha256 {extra['manifest_sha256']}): {how} of "
              f"{event.source_dag_id}.{event.source_task_id} run {event.source_run_id} at {event.timestamp}")
        drift, alarms = extra.get("drift"), extra.get("drift_alarms") or []
        if drift == "warning":
            print(f"the data drifted from its baseline (warning, passed by the breaker): {'; '.join(map(str, alarms))}")
        elif drift:
            print(f"drift from the baseline: {drift}")
        try:
            train_script = script(context["params"], "train_script", "train_example.py")
        except FileNotFoundError as exc:
            raise AirflowFailException(str(exc)) from exc
        return {"manifest": manifest, "manifest_sha256": str(extra["manifest_sha256"]),
                "metrics": manifest.rsplit("/", 1)[0] + "/model-metrics.json",
                "source_run_id": event.source_run_id, "python": interpreter(context["params"]),
                "train_script": train_script}

    located = locate_manifest()

    train = BashOperator(
        task_id="train",
        bash_command=('"$SANITIZER_PYTHON" "$TRAIN_SCRIPT" --manifest "$MANIFEST" '
                      '--manifest-sha256 "$MANIFEST_SHA256" --metrics "$METRICS"'),
        env={
            name: "{{ ti.xcom_pull(task_ids='locate_manifest')['" + key + "'] }}"
            for name, key in (("SANITIZER_PYTHON", "python"), ("TRAIN_SCRIPT", "train_script"), ("MANIFEST", "manifest"),
                              ("MANIFEST_SHA256", "manifest_sha256"), ("METRICS", "metrics"))
        },
        append_env=True,
    )

    located >> train
