"""The house plan holds: every import points down the layers of docs/design.md, so data flows one
way (providers → sync → store → reports → web, cli, alerts) and nothing reaches back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "usage_tracker"

LAYERS: dict[str, int] = {
    "text": 0,
    "people": 1,
    "settings": 1,
    "providers": 2,
    "store": 3,
    "sync": 4,
    "reports": 4,
    "alerts": 5,
    "actions": 6,
    "runtime": 7,
    "web": 8,
    "cli": 9,
    "__main__": 10,
}
"""The room of each top-level module or package and its height: a room imports only from
itself and from rooms below it. The simulator stands apart: it imports only the providers'
contracts (and itself), and nothing imports it but the CLI and the tests."""


def _room(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """The ``usage_tracker`` modules a file imports when it is imported (the top level and
    ``if TYPE_CHECKING:`` blocks; an import inside a function is a deliberate late one)."""
    found: list[tuple[int, str]] = []
    nodes: list[ast.stmt] = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If):
            nodes.extend(node.body)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("usage_tracker."):
                found.append((node.lineno, node.module))
            elif node.module == "usage_tracker":
                found.extend((node.lineno, f"usage_tracker.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend(
                (node.lineno, a.name) for a in node.names if a.name.startswith("usage_tracker.")
            )
    return found


def test_every_import_points_down_the_house_plan() -> None:
    wrong: list[str] = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        room = _room(path)
        if room == "__init__":
            continue
        for line, module in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            target = module.split(".")[1]
            if target in ("__init__", "__version__") or target == room:
                continue
            if room == "simulator":
                allowed = target == "providers"
            elif target == "simulator":
                allowed = room == "cli"
            else:
                allowed = LAYERS[target] < LAYERS[room]
            if not allowed:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({room}) imports {module}")
    assert not wrong, "imports that reach back up:\n" + "\n".join(wrong)


def test_the_check_sees_an_import_that_reaches_back() -> None:
    tree = ast.parse(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from usage_tracker.web.app import create_app\n"
        "if TYPE_CHECKING:\n"
        "    from usage_tracker.reports import summary\n"
        "def late():\n"
        "    from usage_tracker.cli import main\n"
    )
    assert sorted(_module_level_imports(tree)) == [
        (3, "usage_tracker.web.app"),
        (5, "usage_tracker.reports"),
    ]


def test_every_room_has_a_height() -> None:
    rooms = {_room(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "simulator"}
    assert rooms <= set(LAYERS), f"rooms without a place in the plan: {rooms - set(LAYERS)}"
