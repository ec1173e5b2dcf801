"""Form posts to the core's one batched committer (`ticketing.committer`, issue 14 §7).

Each durable commit costs an fsync; the core's committer takes the contacts every channel delivers while one
commit runs and commits them with the next, so concurrent form posts share commits with one another and with
mail. The request waits in a thread of the server's pool (the fields are extracted there, off the commit
path) and answers once its own contact is committed; a batch that fails is retried contact by contact by the
committer, so one bad contact answers with its own error and never takes the others down with it.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool


class Batcher:
    def __init__(self, intake: Any):
        self.intake = intake  # ticketing.ports.IntakePort

    async def submit(self, contact):
        return await run_in_threadpool(self.intake.deliver, contact)
