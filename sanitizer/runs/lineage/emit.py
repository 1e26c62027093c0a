"""Sending a run's OpenLineage events through openlineage-python: START, then COMPLETE or FAIL.

Where the events go is the client's own configuration, read in the process that builds the
pipeline (``Sanitize.expand``): ``OPENLINEAGE_URL`` (+ ``OPENLINEAGE_ENDPOINT``,
``OPENLINEAGE_API_KEY``) for HTTP to Marquez or any OpenLineage endpoint, or a transport in
``openlineage.yml`` (``OPENLINEAGE_CONFIG``, the working directory, ``~/.openlineage/``) or in
``OPENLINEAGE__TRANSPORT__*`` variables: http, kafka, file, console, composite, ...
(``OPENLINEAGE_DISABLED=true`` turns it off). The resolved transport travels with the job in
:class:`LineageContext`, so COMPLETE and FAIL, sent by the publish stage on the workers (Dataflow
workers do not see the launcher's environment), go where START went. No transport configured, or
the ``[lineage]`` extra not installed: nothing is sent (``OUT/lineage.json`` is written either way).

An orchestrator passes its own run as ``OPENLINEAGE_PARENT_ID`` = ``<namespace>/<job name>/<run id>``
(and ``OPENLINEAGE_ROOT_PARENT_ID``, same form) - what Airflow's OpenLineage provider gives with
its ``lineage_parent_id`` / ``lineage_root_parent_id`` macros, as dbt-ol reads them; every event
then carries a ``parent`` run facet. ``OPENLINEAGE_NAMESPACE`` names the job namespace
(default ``sanitizer``).

Lineage is metadata: a problem sending it is logged as a warning, never a reason to fail a run.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sanitizer.runs.lineage import events as lineage
from sanitizer.data.layout import LINEAGE
from sanitizer.runs.lineage.parts import Parts, client_available, to_json

log = logging.getLogger("sanitizer")
TERMINAL = ("COMPLETE", "FAIL", "ABORT")


@dataclass(frozen=True)
class LineageContext:
    """What every event of one run shares; small and picklable (it travels to the publish stage)."""

    run_id: str
    namespace: str
    job_name: str
    parent: dict | None = None  # {namespace, name, runId, root?: {namespace, name, runId}}
    transport: dict | None = None  # the client's transport config as resolved at launch; None: send nothing

    @property
    def naming(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "job_name": self.job_name, "parent": self.parent}


# --------------------------------------------------------------------------- configuration


def _run_ref(value: str | None, name: str) -> dict | None:
    """``<namespace>/<job name>/<run id>`` -> {namespace, name, runId}; None (with a warning) when malformed."""
    if not value:
        return None
    bits = value.strip().split("/")
    try:
        if len(bits) != 3 or not bits[0] or not bits[1]:
            raise ValueError
        return {"namespace": bits[0], "name": bits[1], "runId": str(uuid.UUID(bits[2]))}
    except ValueError:
        log.warning("%s=%r is not <namespace>/<job name>/<run UUID>; the run's lineage names no parent", name, value)
        return None


def parent_from_env(environ=None) -> dict | None:
    """The orchestrator's run from OPENLINEAGE_PARENT_ID / OPENLINEAGE_ROOT_PARENT_ID, or None."""
    environ = os.environ if environ is None else environ
    parent = _run_ref(environ.get("OPENLINEAGE_PARENT_ID"), "OPENLINEAGE_PARENT_ID")
    if parent is not None:
        root = _run_ref(environ.get("OPENLINEAGE_ROOT_PARENT_ID"), "OPENLINEAGE_ROOT_PARENT_ID")
        if root is not None:
            parent["root"] = root
    return parent


@contextmanager
def _quiet_client():
    """The client logs a warning when it falls back to printing events; here that means 'not configured'."""
    logger = logging.getLogger("openlineage.client")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def resolve_transport() -> dict | None:
    """The transport config OpenLineageClient() finds here (its own rules), or None when none is configured."""
    if os.getenv("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    if not client_available():
        if os.getenv("OPENLINEAGE_URL") or os.getenv("OPENLINEAGE_CONFIG"):
            log.warning("OpenLineage is configured but openlineage-python is not installed, so no lineage "
                        "event is sent (OUT/lineage.json is still written); pip install 'sanitizer[lineage]'")
        return None
    from openlineage.client import OpenLineageClient

    with _quiet_client():
        transport = dict(OpenLineageClient().config.transport or {})
    if transport.get("type"):
        return transport
    url = os.getenv("OPENLINEAGE_URL")
    if url:  # the client's plain-variable HTTP set-up
        http: dict[str, Any] = {"type": "http", "url": url,
                                "endpoint": os.getenv("OPENLINEAGE_ENDPOINT", "api/v1/lineage")}
        if os.getenv("OPENLINEAGE_API_KEY"):
            http["auth"] = {"type": "api_key", "apiKey": os.environ["OPENLINEAGE_API_KEY"]}
        return http
    return None


def context_for(run_id: str, source: str | None) -> LineageContext:
    """The run's lineage context, read from this process's environment (the launcher's)."""
    try:
        transport = resolve_transport()
    except Exception as exc:  # noqa: BLE001 - a broken lineage config must not stop a run
        log.warning("OpenLineage configuration could not be read (%s: %s); no lineage event is sent",
                    type(exc).__name__, exc)
        transport = None
    return LineageContext(run_id=run_id, namespace=os.getenv("OPENLINEAGE_NAMESPACE") or lineage.NAMESPACE,
                          job_name=lineage.default_job_name(source or "input"), parent=parent_from_env(),
                          transport=transport)


# --------------------------------------------------------------------------- sending


def send(event, context: LineageContext | None) -> bool:
    """Emit ``event`` (the client's RunEvent) through the context's transport; False when nothing was sent."""
    if event is None or context is None or not context.transport:
        return False
    if isinstance(event, dict):  # built without the client: the launcher has it, this worker does not
        log.warning("the OpenLineage %s event of run %s was not sent: openlineage-python is not installed here "
                    "(install sanitizer[lineage] in the worker environment too)", event.get("eventType"),
                    context.run_id)
        return False
    try:
        from openlineage.client import OpenLineageClient

        with _quiet_client():
            client = OpenLineageClient(config={"transport": dict(context.transport)})
        client.emit(event)
        client.close(timeout=10.0)
        return True
    except Exception as exc:  # noqa: BLE001 - lineage is metadata: never let it change a run's outcome
        log.warning("could not send the OpenLineage %s event of run %s (%s): %s: %s",
                    getattr(getattr(event, "eventType", None), "value", "?"), context.run_id,
                    context.transport.get("type"), type(exc).__name__, exc)
        return False


def _parts() -> Parts:
    return Parts(lineage.producer(), None, lineage.custom_facet_schema())


def start(context: LineageContext, started_at: str, config: dict, plan, out: str, runner: str = "") -> bool:
    """Send the run's START event (inputs and outputs named, schemas as planned); never raises."""
    if not context.transport:
        return False
    try:
        inputs = [{"uri": f.path, "bytes": f.size} for f in plan.files]
        planned = {"input": lineage.schema_fields(plan.schema), "clean": lineage.schema_fields(plan.output_schema)}
        record = {"run_id": context.run_id, "started_at": started_at, "config": config, "inputs": inputs,
                  "runner": runner, "seed": config.get("seed", 0), "columns": {"label": plan.label_column}}
        event = lineage.make_event(_parts(), record, out, "START", planned=planned, **context.naming)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not build the OpenLineage START event: %s: %s", type(exc).__name__, exc)
        return False
    return send(event, context)


def _recorded(out: str) -> dict | None:
    return lineage.read_json(f"{out.rstrip('/')}/{LINEAGE}")


def record_run(record, out: str, state: str = "COMPLETE", error: str | None = None,
               context: LineageContext | None = None, send_now: bool = True):
    """Build the run's event, write OUT/lineage.json, and send it (``send_now``); the event, or None.

    A FAIL already recorded for this run (a retried publish stage) is written again but not sent again.
    Never raises: a problem is logged.
    """
    try:
        naming = context.naming if context is not None else {}
        event = lineage.make_event(_parts(), record, out, state, error, **naming)
        as_json = to_json(event)
        before = _recorded(out) or {}
        repeat = (before.get("eventType") == state == "FAIL"
                  and before.get("run", {}).get("runId") == as_json["run"]["runId"])
        lineage.write_run_event(out, as_json)
    except Exception as exc:  # noqa: BLE001 - lineage is metadata: never let it change a run's outcome
        log.warning("could not write %s/%s: %s: %s", out, LINEAGE, type(exc).__name__, exc)
        return None
    if send_now and not repeat:
        send(event, context)
    return event


def job_failed(context: LineageContext | None, out: str, error: str) -> None:
    """The launcher saw the job fail: record and send FAIL, unless the publish stage already did."""
    if context is None:
        return
    try:
        run = lineage.run_uuid(context.run_id)
        before = _recorded(out) or {}
        if before.get("eventType") == "FAIL" and before.get("run", {}).get("runId") == run:
            return  # the publish stage recorded (and sent) this run's FAIL
        provenance = lineage.read_json(f"{out.rstrip('/')}/provenance.json") or {}
        if provenance.get("run_id") != context.run_id:
            provenance = {"run_id": context.run_id}
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record the run's failure in %s/%s: %s", out, LINEAGE, exc)
        return
    record_run(provenance, out, "FAIL", error, context)
