"""What both simulated APIs share: the ASGI plumbing, a query string read as the APIs read it,
and the error a handler raises to answer with a status."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }


class Query:
    """A query string where ``name=a&name=b`` and ``name[]=a`` both build the array ``name``."""

    def __init__(self, raw: str) -> None:
        self.values: dict[str, list[str]] = defaultdict(list)
        for name, value in parse_qsl(raw, keep_blank_values=True):
            self.values[name.removesuffix("[]")].append(value)

    def array(self, name: str) -> list[str]:
        return [v for item in self.values.get(name, []) for v in item.split(",") if v]

    def text(self, name: str) -> str | None:
        values = self.values.get(name)
        return values[-1] if values else None

    def integer(self, name: str, *, required: bool = False) -> int | None:
        raw = self.text(name)
        if raw is None or raw == "":
            if required:
                raise ApiError(400, f"Missing required parameter: '{name}'.", name)
            return None
        if not re.fullmatch(r"-?\d+", raw):
            raise ApiError(400, f"Invalid value for '{name}': expected an integer.", name)
        return int(raw)

    def boolean(self, name: str) -> bool | None:
        raw = self.text(name)
        if raw is None:
            return None
        if raw not in ("true", "false"):
            raise ApiError(400, f"Invalid value for '{name}': expected true or false.", name)
        return raw == "true"


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
