"""Adaptive batching: concurrent requests for one model are predicted in one call.

A model call costs a fixed overhead (input validation, dispatch) plus a little per row, so
one call for many rows is far cheaper than many calls for one row each. The batcher adds no
wait when the model is idle: the first request runs at once, and the requests that arrive
while it runs are predicted together as soon as it is done (up to `max_batch` rows a call).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from cais.server.models import LoadedModel

__all__ = ["Batcher"]


@dataclass
class _Waiting:
    batch: Any  # a list of strings, or a 2-D numpy array
    method: str
    future: asyncio.Future


def _key(batch: Any, method: str) -> tuple | None:
    """Which requests can share a call; None for inputs that are never merged (tables)."""
    if isinstance(batch, list) and all(isinstance(v, str) for v in batch):
        return (method, "text")
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape) == 2 and getattr(batch, "dtype", None) is not None:
        return (method, "rows", shape[1], str(batch.dtype))
    return None


def _join(batches: list[Any]) -> Any:
    if isinstance(batches[0], list):
        return [value for batch in batches for value in batch]
    import numpy as np

    return np.concatenate(batches)


class Batcher:
    """One per served model version, living on the server's event loop."""

    def __init__(self, model: LoadedModel, *, max_batch: int = 64) -> None:
        self.model = model
        self.max_batch = max_batch
        self.waiting: deque[_Waiting] = deque()
        self.running = False
        self.calls = 0  # model calls made, for tests and metrics

    async def predict(self, batch: Any, method: str = "predict") -> list:
        if _key(batch, method) is None or len(batch) >= self.max_batch:
            self.calls += 1
            return await run_in_threadpool(self.model.predict, batch, method=method)
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(batch, method, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                group = self._take()
                await self._run(group)
        finally:
            self.running = False

    def _take(self) -> list[_Waiting]:
        """The oldest request, and the ones after it that can share its call."""
        first = self.waiting.popleft()
        key = _key(first.batch, first.method)
        group, rows, kept = [first], len(first.batch), deque()
        while self.waiting:
            item = self.waiting.popleft()
            if _key(item.batch, item.method) == key and rows + len(item.batch) <= self.max_batch:
                group.append(item)
                rows += len(item.batch)
            else:
                kept.append(item)
        self.waiting.extendleft(reversed(kept))
        return group

    async def _run(self, group: list[_Waiting]) -> None:
        self.calls += 1
        try:
            results = await run_in_threadpool(
                self.model.predict, _join([w.batch for w in group]), method=group[0].method
            )
        except Exception as exc:
            if len(group) == 1:
                if not group[0].future.done():
                    group[0].future.set_exception(exc)
                return
            # One bad request must not fail the others: predict each on its own.
            for item in group:
                try:
                    self.calls += 1
                    item.future.set_result(
                        await run_in_threadpool(self.model.predict, item.batch, method=item.method)
                    )
                except Exception as exc:  # reported to that request only
                    if not item.future.done():
                        item.future.set_exception(exc)
            return
        start = 0
        for item in group:
            end = start + len(item.batch)
            if not item.future.done():
                item.future.set_result(results[start:end])
            start = end
