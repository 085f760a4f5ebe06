"""The contract table in upstream/contract.py matches OpenAI's published spec."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from usage_tracker.providers.openai.contract import (
    COSTS_FILTERS,
    COSTS_GROUP_BY,
    COSTS_OBJECT,
    SOURCES,
)
from usage_tracker.providers.records import DIMENSIONS, METRICS

from .conftest import SPEC


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def _params(spec: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}


def _result_schema(spec: dict[str, Any], object_name: str) -> dict[str, Any]:
    for schema in spec["components"]["schemas"].values():
        if schema.get("properties", {}).get("object", {}).get("enum") == [object_name]:
            return dict(schema)
    raise AssertionError(f"no schema for {object_name}")


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_source_groups_and_filters_as_the_spec_says(spec: dict[str, Any], name: str) -> None:
    source = SOURCES[name]
    params = _params(spec, source.path)
    assert list(source.group_by) == params["group_by"]["schema"]["items"]["enum"]
    array_params = {n for n, p in params.items() if p["schema"].get("type") == "array"}
    assert set(source.filters) - {"batch"} == array_params - {"group_by"}
    assert ("batch" in source.filters) == ("batch" in params)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_source_knows_every_counter_of_its_result(spec: dict[str, Any], name: str) -> None:
    source = SOURCES[name]
    schema = _result_schema(spec, source.object)
    integers = {
        k for k, v in schema["properties"].items() if v.get("type") == "integer" and k != "object"
    }
    assert set(source.metrics) == integers
    assert set(source.metrics) <= set(METRICS)
    assert set(source.group_by) <= set(DIMENSIONS)
    assert set(source.group_by) <= set(schema["properties"])


def test_costs_group_by_and_filters_match_the_spec(spec: dict[str, Any]) -> None:
    params = _params(spec, "/organization/costs")
    assert list(COSTS_GROUP_BY) == params["group_by"]["schema"]["items"]["enum"]
    assert set(COSTS_FILTERS) == {"project_ids", "api_key_ids"} & set(params)
    assert _result_schema(spec, COSTS_OBJECT)


def test_every_usage_path_in_the_spec_is_a_known_source(spec: dict[str, Any]) -> None:
    paths = {p.rsplit("/", 1)[1] for p in spec["paths"] if p.startswith("/organization/usage/")}
    assert paths == set(SOURCES)
