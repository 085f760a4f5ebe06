"""Reading the user's JSON and YAML files with errors that name the file, line and column."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


def parse_json_object(text: str, origin: str, what: str = "a JSON object") -> dict[str, Any]:
    """The JSON object in ``text``; a ValueError says ``origin, line L, column C: problem``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{origin}, line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{origin}, line 1, column 1: expected {what}")
    return data


class DocumentError(ValueError):
    """A user's YAML or JSON file cannot be used; the message names it, the line and column."""


def read_document(path: Path) -> tuple[str, Any]:
    """The text of ``path`` and the document in it (YAML, or JSON when it ends in .json)."""
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DocumentError(f"{origin}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DocumentError(f"{origin}: not UTF-8 text") from None
    return text, parse_document(text, origin, json_syntax=path.suffix.lower() == ".json")


def parse_document(text: str, origin: str, *, json_syntax: bool = False) -> Any:
    """The YAML (or JSON) document in ``text``."""
    import yaml

    if json_syntax:
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise DocumentError(f"{origin}, line {e.lineno}, column {e.colno}: {e.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DocumentError(f"{origin}{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise DocumentError(f"{origin}: {e}") from None


def validated(model: type[M], data: Any, text: str, origin: str) -> M:
    """``data`` as ``model``; the first problem named with the line and column of its value."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        path = [p for p in first["loc"] if not isinstance(p, str) or not p.startswith("function")]
        field = ".".join(str(p) for p in path) or "(top)"
        message = first["msg"].removeprefix("Value error, ")
        raise DocumentError(f"{origin}{position(text, path)}: {field}: {message}") from None


def position(text: str, path: Sequence[Any]) -> str:
    """ ", line L, column C" of the value at ``path`` in the document (JSON is YAML too), or
    of the deepest part of it that exists; empty when the text cannot be walked."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return ""
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
    if node is None:
        return ""
    return f", line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"
