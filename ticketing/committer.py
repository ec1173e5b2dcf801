"""Group commit: the one batched committer every channel's contacts go through (SMTP, IMAP, the web form, API).

Each durable commit costs an fsync (SQLite `synchronous=FULL`, PostgreSQL's WAL flush). One thread takes the
contacts that arrive while a commit runs and commits them together with the next one, so under load the
batches grow by themselves and N fsyncs become one, while a lone contact is never held back waiting for
company. A batch that fails as a whole is retried contact by contact, so one contact that trips the core costs
only itself: each waiter gets its own result or its own exception.

Field extraction is CPU work on the contact alone: callers do it before handing the contact over (in the SMTP
parse workers, or in the caller's thread), so that the commit thread only writes rows. A contact handed over
without its extraction is extracted here, as a fallback.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

log = logging.getLogger(__name__)

_STOP = object()


class GroupCommitter:
    """`submit(item) -> Future`; `commit_many(items) -> results` is run on one thread, `max_batch` at a time."""

    def __init__(self, commit_many: Callable[[list[Any]], list[Any]], *, max_batch: int = 64, name: str = "intake-commit"):
        self.commit_many, self.max_batch, self.name = commit_many, max_batch, name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # for tests and benches: how many commits served how many items
        self.items = 0

    def submit(self, item: Any) -> Future:
        future: Future = Future()
        self._ensure_thread()
        self._queue.put((item, future))
        return future

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the thread (a later `submit` starts it again)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            batch = [(item, f) for item, f in batch if f.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Any, Future]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = self.commit_many([item for item, _ in batch])
        except BaseException as e:  # noqa: BLE001 - retried one by one below
            if len(batch) == 1:
                batch[0][1].set_exception(e)
                return
            log.warning("a batch of %d contacts failed (%s: %s): committing them one by one", len(batch), type(e).__name__, e)
            for item, future in batch:
                try:
                    future.set_result(self.commit_many([item])[0])
                except BaseException as e1:  # noqa: BLE001 - this one's own error, to its own waiter
                    future.set_exception(e1)
            return
        for (_, future), result in zip(batch, results):
            future.set_result(result)
