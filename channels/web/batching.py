"""Group commit for form posts: concurrent submissions are handed to the core together, in one transaction.

Each durable commit costs an fsync; taking the contacts that arrive while one commit runs and delivering them
with one `deliver_many` call (as the SMTP receiver does) turns N fsyncs into one, and keeps request handlers
from queueing on the database's write lock. A batch that fails as a whole is retried contact by contact, so
one bad contact answers with its own error and never takes the others down with it.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from starlette.concurrency import run_in_threadpool


class Batcher:
    def __init__(self, deliver_many: Callable[[list], list], deliver: Callable, max_batch: int = 64):
        self.deliver_many, self.deliver, self.max_batch = deliver_many, deliver, max_batch
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def submit(self, contact):
        future = asyncio.get_running_loop().create_future()
        self._pending.append((contact, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                results = await run_in_threadpool(self.deliver_many, [c for c, _ in batch])
            except Exception:
                for contact, future in batch:  # one by one: each gets its own result or its own error
                    try:
                        result = await run_in_threadpool(self.deliver, contact)
                    except Exception as e:
                        if not future.done():
                            future.set_exception(e)
                    else:
                        if not future.done():
                            future.set_result(result)
                continue
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
