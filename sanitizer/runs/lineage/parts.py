"""The parts of an OpenLineage event: openlineage-python's typed classes, or spec-shaped dicts without it.

``sanitizer.runs.lineage.events`` says what a run's event contains; this module makes each part of it. With the
``[lineage]`` extra installed (``openlineage-python``) every part is the client's own class
(``openlineage.client.event_v2`` RunEvent / Run / Job / InputDataset / OutputDataset and the
``openlineage.client.facet_v2`` facets), so the event is what the client validates, serialises and
sends. Without the extra the same calls give plain dicts of the same JSON shape (the facets'
``_producer`` and ``_schemaURL`` included, schema URLs as the client at the pinned version has them),
so ``OUT/lineage.json`` is written either way. ``to_json`` turns either form into the event's JSON.
"""

from __future__ import annotations

import importlib
from typing import Any

# facet kind -> (module under openlineage.client.facet_v2, class, schema URL without the client)
_SPEC = "https://openlineage.io/spec/facets"
FACETS: dict[str, tuple[str, str, str]] = {
    "schema": ("schema_dataset", "SchemaDatasetFacet",
               f"{_SPEC}/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"),
    "version": ("dataset_version_dataset", "DatasetVersionDatasetFacet",
                f"{_SPEC}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"),
    "inputStatistics": ("input_statistics_input_dataset", "InputStatisticsInputDatasetFacet",
                        f"{_SPEC}/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet"),
    "dataQualityMetrics": ("data_quality_metrics_input_dataset", "DataQualityMetricsInputDatasetFacet",
                           f"{_SPEC}/1-0-3/DataQualityMetricsInputDatasetFacet.json"
                           "#/$defs/DataQualityMetricsInputDatasetFacet"),
    "dataQualityAssertions": ("data_quality_assertions_dataset", "DataQualityAssertionsDatasetFacet",
                              f"{_SPEC}/1-1-0/DataQualityAssertionsDatasetFacet.json"
                              "#/$defs/DataQualityAssertionsDatasetFacet"),
    "outputStatistics": ("output_statistics_output_dataset", "OutputStatisticsOutputDatasetFacet",
                         f"{_SPEC}/1-0-2/OutputStatisticsOutputDatasetFacet.json"
                         "#/$defs/OutputStatisticsOutputDatasetFacet"),
    "errorMessage": ("error_message_run", "ErrorMessageRunFacet",
                     f"{_SPEC}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"),
    "processing_engine": ("processing_engine_run", "ProcessingEngineRunFacet",
                          f"{_SPEC}/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"),
    "parent": ("parent_run", "ParentRunFacet", f"{_SPEC}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"),
    "jobType": ("job_type_job", "JobTypeJobFacet", f"{_SPEC}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"),
    "documentation": ("documentation_job", "DocumentationJobFacet",
                      f"{_SPEC}/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet"),
}
# nested parts that are not facets: kind -> (module under openlineage.client.facet_v2, class)
_NESTED = {
    "field": ("schema_dataset", "SchemaDatasetFacetFields"),
    "assertion": ("data_quality_assertions_dataset", "Assertion"),
    "parent_run": ("parent_run", "Run"),
    "parent_job": ("parent_run", "Job"),
    "root": ("parent_run", "Root"),
    "root_run": ("parent_run", "RootRun"),
    "root_job": ("parent_run", "RootJob"),
}
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def client_available() -> bool:
    """Whether openlineage-python (the ``[lineage]`` extra) can be imported."""
    try:
        importlib.import_module("openlineage.client.event_v2")
        importlib.import_module("openlineage.client.facet_v2")
        return True
    except Exception:  # noqa: BLE001 - not installed, or broken: lineage.json is still written
        return False


def _class(module: str, name: str):
    """A class of the client: ``openlineage.client.event_v2.<name>``, or ``facet_v2.<module>.<name>``."""
    if module == "event_v2":
        return getattr(importlib.import_module("openlineage.client.event_v2"), name)
    return getattr(getattr(importlib.import_module("openlineage.client.facet_v2"), module), name)


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class Parts:
    """Makes an event's parts as the client's classes (``typed``) or as spec-shaped dicts."""

    def __init__(self, producer: str, typed: bool | None = None, custom_schema: str = ""):
        self.producer = producer
        self.typed = client_available() if typed is None else typed
        self.custom_schema = custom_schema

    def facet(self, kind: str, **fields: Any):
        module, cls, schema = FACETS[kind]
        if self.typed:
            return _class(module, cls)(**_plain(fields), producer=self.producer)
        return {"_producer": self.producer, "_schemaURL": schema, **_plain(fields)}

    def nested(self, kind: str, **fields: Any):
        if self.typed:
            return _class(*_NESTED[kind])(**_plain(fields))
        return _plain(fields)

    def custom_run_facet(self, schema: str | None = None, **fields: Any):
        """This project's own run facet; its schema URL (``schema``, default the run facet's) points at its
        producer, as custom facets do."""
        body = _plain(fields)
        schema = schema or self.custom_schema
        if not self.typed:
            return {"_producer": self.producer, "_schemaURL": schema, **body}
        return _custom_class(schema)(producer=self.producer).with_additional_properties(**body)

    def dataset(self, side: str, namespace: str, name: str, facets: dict, side_facets: dict):
        key = "inputFacets" if side == "input" else "outputFacets"
        if self.typed:
            cls = _class("event_v2", "InputDataset" if side == "input" else "OutputDataset")
            return cls(namespace=namespace, name=name, facets=facets, **{key: side_facets})
        item: dict[str, Any] = {"namespace": namespace, "name": name, "facets": facets}
        if side_facets:
            item[key] = side_facets
        return item

    def run_event(self, event_type: str, event_time: str, run_id: str, run_facets: dict,
                  job_namespace: str, job_name: str, job_facets: dict, inputs: list, outputs: list):
        if self.typed:
            ev = importlib.import_module("openlineage.client.event_v2")
            return ev.RunEvent(eventType=ev.RunState(event_type), eventTime=event_time, producer=self.producer,
                               run=ev.Run(runId=run_id, facets=run_facets),
                               job=ev.Job(namespace=job_namespace, name=job_name, facets=job_facets),
                               inputs=inputs, outputs=outputs)
        return {"eventType": event_type, "eventTime": event_time, "producer": self.producer,
                "schemaURL": RUN_EVENT_SCHEMA, "run": {"runId": run_id, "facets": run_facets},
                "job": {"namespace": job_namespace, "name": job_name, "facets": job_facets},
                "inputs": inputs, "outputs": outputs}


_CUSTOM: dict[str, type] = {}


def _custom_class(schema_url: str) -> type:
    if schema_url not in _CUSTOM:
        import attr
        from openlineage.client.facet_v2 import RunFacet

        @attr.define
        class SanitizerRunFacet(RunFacet):
            @staticmethod
            def _get_schema() -> str:
                return schema_url

        _CUSTOM[schema_url] = SanitizerRunFacet
    return _CUSTOM[schema_url]


def to_json(event) -> dict[str, Any]:
    """The event's JSON form (a dict), from either kind of event."""
    if isinstance(event, dict):
        return event
    from openlineage.client.serde import Serde

    return Serde.to_dict(event)
