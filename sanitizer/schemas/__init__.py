"""Versioned JSON Schemas (draft 2020-12) of a run's ``manifest.json`` and ``provenance.json``.

Each document carries ``schema_version``; the schema for version N is
``sanitizer/schemas/<kind>-N.schema.json`` (shipped in the package)::

    from sanitizer import schemas
    schemas.validate("manifest", json.load(open("out/manifest.json")))   # raises SchemaError if it does not match
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from sanitizer.errors import SanitizerError

KINDS = ("manifest", "provenance")
VERSION = 1
"""The schema version this release writes."""


class SchemaError(SanitizerError):
    """A manifest or provenance document does not match its JSON Schema."""


def schema(kind: str, version: int = VERSION) -> dict[str, Any]:
    """The JSON Schema of ``kind`` (manifest or provenance) at ``version``."""
    if kind not in KINDS:
        raise ValueError(f"no schema for {kind!r}; known: {', '.join(KINDS)}")
    name = f"{kind}-{int(version)}.schema.json"
    try:
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{kind} schema version {version} is not known to this sanitizer (upgrade it)") from None
    return json.loads(text)


def validate(kind: str, document: dict[str, Any]) -> None:
    """Check ``document`` against the schema its ``schema_version`` names; SchemaError names the first problem."""
    import jsonschema

    version = document.get("schema_version") if isinstance(document, dict) else None
    if not isinstance(version, int):
        raise SchemaError(f"the {kind} has no integer schema_version (got {version!r})")
    validator = jsonschema.Draft202012Validator(schema(kind, version),
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise SchemaError(f"{kind} does not match schema version {version} at {where}: {first.message}"
                          + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
