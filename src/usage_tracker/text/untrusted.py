"""Text that strangers chose (key, user, project and person names; model names), made inert
for where it is written: a spreadsheet cell, a terminal. Pages are escaped by Jinja2's
autoescape and e-mails are sent as plain text; this module covers the rest.

- Control characters (C0, DEL, C1) and the bidirectional overrides that reorder what a reader
  sees are written as visible escapes (``\\x1b``, ``\\u202e``): a terminal never receives an
  escape sequence, and openpyxl never meets a character XML 1.0 cannot hold.
- A spreadsheet cell that starts with ``= + - @`` (or a tab or carriage return, which some
  programs skip before reading a formula) is a formula to Excel, LibreOffice and Sheets when a
  CSV file is opened: OWASP's rule prefixes such a cell with ``'``. In XLSX files the cell is
  written as text instead (never as a formula), with Excel's quote prefix so that editing the
  cell does not turn it into one either.
- Rich reads ``[…]`` as markup: a name reaches a Rich table as a ``Text``, which Rich never
  parses.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with each control or bidirectional-override character as a visible escape."""
    return _INVISIBLE.sub(_escape, text)


def starts_formula(text: str) -> bool:
    return text.startswith(FORMULA_START)


def csv_cell(text: str) -> str:
    """A CSV cell no spreadsheet reads as a formula (OWASP's rule: a leading ``'``), with
    control characters escaped."""
    return "'" + printable(text) if starts_formula(text) else printable(text)


def terminal(text: str) -> str:
    """Plain terminal output (``typer.echo``): no escape sequence reaches the terminal."""
    return printable(text)


def rich_text(text: str) -> Text:
    """A Rich cell showing ``text`` as it is: no markup read, control characters escaped."""
    from rich.text import Text

    return Text(printable(text))
