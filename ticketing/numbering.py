"""Ticket numbers: `HD-2026-000123`, made from the ticket's year and its database id.

The id is an autoincrement key that the database never hands out twice, so a number is unique and never
reused without a counter table to lock; gaps (a rolled-back insert) do not matter. The year is the year the
ticket was created, so numbers read naturally for the people who quote them on the phone.
"""

from __future__ import annotations

import re
from datetime import datetime

NUMBER_RE = re.compile(r"\b([A-Z]{2,5})-(\d{4})-(\d{6,12})\b")


def format_number(prefix: str, created_at: datetime, ticket_id: int) -> str:
    return f"{prefix}-{created_at.year:04d}-{ticket_id:06d}"


def parse_number(text: str, prefix: str) -> tuple[int, int] | None:
    """Return (year, id) of a ticket number in `text`, or None. Accepts lower case and spaces typed by people."""
    m = NUMBER_RE.search(text.upper().replace(" ", ""))
    if not m or m.group(1) != prefix:
        return None
    return int(m.group(2)), int(m.group(3))


def find_numbers(text: str, prefix: str) -> list[str]:
    """Every ticket number with our prefix written in a text (a subject tag, a body that quotes one)."""
    return [m.group(0) for m in NUMBER_RE.finditer(text.upper()) if m.group(1) == prefix]
