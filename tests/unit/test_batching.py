"""Adaptive batching: concurrent requests share model calls, and stay independent."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from cais.server.batching import Batcher


class SlowModel:
    """Upper-cases texts (or sums rows) and records every call; refuses the text "bad"."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.calls: list[int] = []

    def predict(self, batch, *, method: str = "predict") -> list:
        time.sleep(self.seconds)  # runs in a worker thread, as a real model would
        self.calls.append(len(batch))
        if isinstance(batch, list):
            if "bad" in batch:
                raise ValueError("bad input")
            return [text.upper() for text in batch]
        return batch.sum(axis=1).tolist()


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_single_requests_share_calls_and_get_their_own_answers():
    model = SlowModel()
    batcher = Batcher(model, max_batch=64)

    async def main():
        return await asyncio.gather(*(batcher.predict([f"t{i}"]) for i in range(20)))

    answers = run(main())
    assert answers == [[f"T{i}"] for i in range(20)]
    assert sum(model.calls) == 20
    assert len(model.calls) < 20  # requests that arrived together shared calls


def test_no_wait_when_idle():
    model = SlowModel(seconds=0)
    batcher = Batcher(model)
    started = time.perf_counter()
    assert run(batcher.predict(["a"])) == ["A"]
    assert time.perf_counter() - started < 0.5
    assert model.calls == [1]


def test_a_bad_request_fails_alone():
    model = SlowModel()
    batcher = Batcher(model)

    async def main():
        return await asyncio.gather(
            batcher.predict(["first"]),
            batcher.predict(["ok"]),
            batcher.predict(["bad"]),
            batcher.predict(["fine"]),
            return_exceptions=True,
        )

    first, ok, bad, fine = run(main())
    assert first == ["FIRST"] and ok == ["OK"] and fine == ["FINE"]
    assert isinstance(bad, ValueError)


def test_batches_are_bounded_and_kinds_are_not_mixed():
    model = SlowModel()
    batcher = Batcher(model, max_batch=8)

    async def main():
        texts = [batcher.predict([f"t{i}", f"u{i}"]) for i in range(10)]
        rows = [batcher.predict(np.array([[1.0, 2.0]])) for _ in range(3)]
        wide = [batcher.predict(np.array([[1.0, 2.0, 3.0]]))]
        return await asyncio.gather(*texts, *rows, *wide)

    answers = run(main())
    assert answers[:10] == [[f"T{i}", f"U{i}"] for i in range(10)]
    assert answers[10:13] == [[3.0]] * 3
    assert answers[13] == [6.0]
    assert max(model.calls) <= 8


def test_a_large_request_runs_on_its_own():
    model = SlowModel(seconds=0)
    batcher = Batcher(model, max_batch=4)
    assert run(batcher.predict([str(i) for i in range(10)])) == [str(i) for i in range(10)]
    assert model.calls == [10]


@pytest.mark.parametrize("batch", [[1, 2], np.array([1.0, 2.0])])
def test_inputs_that_cannot_be_merged_go_straight_to_the_model(batch):
    class Echo:
        calls = 0

        def predict(self, batch, *, method="predict"):
            Echo.calls += 1
            return list(batch)

    batcher = Batcher(Echo())
    assert run(batcher.predict(batch)) == list(batch)
    assert Echo.calls == 1
