"""Sorting failures by kind, so that every edge answers the same failure the same way.

`is_storage_full(exc)`: the disk (or the database's quota) is full. It is ours and temporary: nothing was
stored, so an edge answers "try again later" (SMTP 452/451, HTTP 503 with Retry-After) and never claims to
have kept what it did not. It is recognised in every form it reaches us:
- an `OSError` with ENOSPC or EDQUOT (the blob store's writes and fsyncs),
- SQLite's `SQLITE_FULL` ("database or disk is full"),
- PostgreSQL's SQLSTATE class 53 (insufficient resources: 53100 disk_full, 53200 out of memory, …),
wrapped or not in SQLAlchemy's `DBAPIError` or another exception's `__cause__`/`__context__`.
"""

from __future__ import annotations

import errno

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = "database or disk is full"
# SQLSTATE 53xxx: disk_full, out_of_memory, too_many_connections, configuration_limit_exceeded. Only these two
# say "the storage is full"; the others are temporary too but not about space.
_PG_FULL = {"53100", "53200"}


def is_storage_full(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the driver's error
        for candidate in (exc, orig):
            if candidate is None:
                continue
            if getattr(candidate, "sqlstate", None) in _PG_FULL or getattr(candidate, "pgcode", None) in _PG_FULL:
                return True
            if type(candidate).__module__.startswith("sqlite3") and _SQLITE_FULL in str(candidate):
                return True
            if getattr(candidate, "sqlite_errorname", None) == "SQLITE_FULL":
                return True
        exc = exc.__cause__ or exc.__context__
    return False
