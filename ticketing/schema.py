"""Every table of the core, for `Base.metadata` (Alembic's env, a test's `create_all`).

Tables are defined beside the service that owns them (`operators`, `transcription`, `outbox`, ...), each
module importing `ticketing.models` for `Base` and the tables it refers to. This module is the one place that
imports them all: `models` itself imports none of them, so no module of the core imports itself through
another (tests/test_import_cycles.py). A new table module is added here, one line.
"""

from __future__ import annotations

from . import audit, groups, kbindex, knowledge, operators, organisations, outbox, suggestions, transcription  # noqa: F401
from . import links, readmit  # noqa: F401  (issue 13 §4, §6)
from .models import Base

metadata = Base.metadata

__all__ = ["Base", "metadata"]
