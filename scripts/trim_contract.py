"""Write the trimmed copy of OpenAI's admin API contract that the tests read.

    python scripts/trim_contract.py PUBLISHED.yaml tests/upstream/openai-admin-api.yaml

Keeps only what a test checks: the paths, their parameters and the response shapes (field
names, types, enums, required lists, references). Prose (descriptions, summaries, examples,
vendor extensions) is dropped, so nothing of OpenAI's text is copied.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

DROPPED = {"description", "summary", "example", "examples", "title", "termsOfService", "tags"}
KEPT_OPERATION = {"parameters", "responses", "operationId"}


def _trim(node: Any) -> Any:
    if isinstance(node, list):
        return [_trim(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: _trim(v) for k, v in node.items() if k not in DROPPED and not k.startswith("x-")}


def _operation(op: dict[str, Any]) -> dict[str, Any]:
    return _trim({k: v for k, v in op.items() if k in KEPT_OPERATION})


def trim(spec: dict[str, Any], source: str) -> dict[str, Any]:
    paths = {
        path: {method: _operation(op) for method, op in item.items() if method == "get"}
        for path, item in spec["paths"].items()
    }
    components = spec.get("components", {})
    return {
        "openapi": spec["openapi"],
        "info": {
            "title": "OpenAI admin API (trimmed for tests)",
            "version": spec["info"]["version"],
        },
        "x-source": source,
        "paths": {p: ops for p, ops in paths.items() if ops},
        "components": {
            "schemas": _trim(components.get("schemas", {})),
            "responses": _trim(components.get("responses", {})),
        },
    }


def main(argv: list[str]) -> None:
    src, out = Path(argv[1]), Path(argv[2])
    text = src.read_text()
    commit = re.search(r"commit ([0-9a-f]{40}) \((\d{4}-\d\d-\d\d)", text)
    where = f" at commit {commit[1]} ({commit[2]})" if commit else ""
    source = f"openai/openai-openapi openapi.yaml{where}, trimmed by scripts/trim_contract.py"
    trimmed = trim(yaml.safe_load(text), source)
    out.write_text(yaml.safe_dump(trimmed, sort_keys=False, width=100))


if __name__ == "__main__":
    main(sys.argv)
