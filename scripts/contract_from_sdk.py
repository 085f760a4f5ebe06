"""Add to the trimmed contract what the pinned ``openai`` SDK knows and the published document
(of an older date) does not: new usage endpoints, new group-by fields, new result fields.

    python scripts/contract_from_sdk.py tests/upstream/openai-admin-api.yaml

The SDK's types are generated from OpenAI's own OpenAPI document, so they are the contract as
of the SDK's release. Only names and types are taken (no prose). Running it twice changes
nothing.
"""

from __future__ import annotations

import importlib
import sys
import typing
from pathlib import Path
from typing import Any

import openai
import yaml
from openai.resources.admin.organization.usage import Usage

INTEGER = {"type": "integer"}


def _literals(annotation: Any) -> list[Any]:
    """The values of a Literal inside List[...] / Optional[...] / Annotated[...]."""
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [v for arg in typing.get_args(annotation) for v in _literals(arg)]


def _is_array(annotation: Any) -> bool:
    text = str(annotation)
    return any(kind in text for kind in ("List[", "Sequence[", "SequenceNotStr"))


def _params(name: str) -> dict[str, Any]:
    module = importlib.import_module(f"openai.types.admin.organization.usage_{name}_params")
    typed = next(v for k, v in vars(module).items() if k.endswith("Params"))
    return typing.get_type_hints(typed, include_extras=True)


def _result_classes(name: str) -> dict[str, Any]:
    """object literal → the SDK's result model, for every result the endpoint's page can hold."""
    module = importlib.import_module(f"openai.types.admin.organization.usage_{name}_response")
    found = {}
    for value in vars(module).values():
        fields = getattr(value, "model_fields", {})
        if "object" in fields and "bucket" not in _literals(fields["object"].annotation):
            for literal in _literals(fields["object"].annotation):
                if str(literal).startswith("organization."):
                    found[literal] = value
    return found


def _field_schema(annotation: Any) -> dict[str, Any]:
    literals = _literals(annotation)
    text = str(annotation)
    if literals and "str" not in text:
        return {"anyOf": [{"type": "string", "enum": literals}, {"type": "null"}]}
    if "int" in text and "Optional" in text:
        return INTEGER  # absent, never null, in every published example
    if "int" in text:
        return INTEGER
    if "bool" in text:
        return {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
    return {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _schema_name(object_name: str) -> str:
    part = object_name.removeprefix("organization.usage.").removesuffix(".result")
    return "Usage" + "".join(p.capitalize() for p in part.split("_")) + "Result"


def _add_result(spec: dict[str, Any], object_name: str, model: Any) -> None:
    schemas = spec["components"]["schemas"]
    existing = next(
        (
            s
            for s in schemas.values()
            if s.get("properties", {}).get("object", {}).get("enum") == [object_name]
        ),
        None,
    )
    if existing is None:
        required = [n for n, f in model.model_fields.items() if f.is_required()]
        existing = schemas[_schema_name(object_name)] = {
            "type": "object",
            "properties": {"object": {"type": "string", "enum": [object_name]}},
            "required": ["object", *[r for r in required if r != "object"]],
        }
        bucket = schemas["UsageTimeBucket"]["properties"]["results"]["items"]["oneOf"]
        bucket.insert(-1, {"$ref": f"#/components/schemas/{_schema_name(object_name)}"})
    for name, field in model.model_fields.items():
        if name not in existing["properties"]:
            existing["properties"][name] = _field_schema(field.annotation)


def _add_path(spec: dict[str, Any], name: str) -> None:
    path = f"/organization/usage/{name}"
    hints = _params(name)
    template = spec["paths"]["/organization/usage/completions"]["get"]
    operation = spec["paths"].setdefault(
        path,
        {
            "get": {
                "operationId": f"usage-{name.replace('_', '-')}",
                "parameters": [
                    p
                    for p in template["parameters"]
                    if p["name"] in ("start_time", "end_time", "bucket_width", "limit", "page")
                ],
                "responses": template["responses"],
            }
        },
    )["get"]
    known = {p["name"]: p for p in operation["parameters"]}
    for param, annotation in hints.items():
        if param == "group_by":
            values = _literals(annotation)
            if param in known:
                enum = known[param]["schema"]["items"]["enum"]
                enum.extend(v for v in values if v not in enum)
            else:
                operation["parameters"].append(
                    {
                        "name": "group_by",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "array", "items": {"type": "string", "enum": values}},
                    }
                )
        elif param not in known and _is_array(annotation):
            operation["parameters"].append(
                {
                    "name": param,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "array", "items": {"type": "string"}},
                }
            )
        elif param not in known and param == "batch":
            operation["parameters"].append(
                {"name": "batch", "in": "query", "required": False, "schema": {"type": "boolean"}}
            )


def main(argv: list[str]) -> None:
    out = Path(argv[1])
    spec = yaml.safe_load(out.read_text())
    sources = [m for m in vars(Usage) if not m.startswith("_") and m not in ("costs",)]
    sources = [m for m in sources if not m.startswith("with_")]
    for name in sorted(sources):
        _add_path(spec, name)
        for object_name, model in _result_classes(name).items():
            if object_name != "organization.costs.result":
                _add_result(spec, object_name, model)
    spec["x-sdk-additions"] = f"openai {openai.__version__} (scripts/contract_from_sdk.py)"
    out.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))


if __name__ == "__main__":
    main(sys.argv)
