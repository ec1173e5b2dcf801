"""Reading the CSV files the directory is imported from: rows with their line numbers, and the import report.

Shared by every importer (`inventory`, `organisations`, `groups`): a row that cannot be read is reported with
its line number and the rest is still imported.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


@dataclass
class ImportReport:
    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not errors: what the import did besides (a new organisation)

    def lines(self) -> list[str]:
        return [f"line {n}: {msg}" for n, msg in self.errors] + self.notes


class RowError(ValueError):
    pass


def rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, the row with lower-case keys and stripped values) for each row of the CSV file."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return
        for row in reader:
            yield reader.line_num, {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}


def split(value: str) -> list[str]:
    """A `|`-separated list cell."""
    return [v.strip() for v in value.split("|") if v.strip()]
