"""A request still running when the server's grace period is over is answered 503 with a JSON
error, whether its task was cancelled or its model call cannot be stopped."""

from __future__ import annotations

import asyncio
import json

import pytest

from cais.server.workers import _CutOff


def _run(coroutine):
    return asyncio.run(coroutine)


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def _http() -> dict:
    return {"type": "http", "method": "POST", "path": "/predict", "headers": []}


def _answer(sent: list[dict]) -> tuple[int, dict, dict]:
    start, body = sent
    return start["status"], dict(start["headers"]), json.loads(body["body"])


async def _cancelled_while_stopping(stopping: bool, started: bool) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope, receive, send) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(60)

    cut_off = _CutOff(app, grace=0.5)
    task = asyncio.ensure_future(cut_off(_http(), _receive, send))
    await asyncio.sleep(0.01)
    cut_off.stopping = stopping
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        sent.append({"type": "cancelled"})
    assert not cut_off.running
    return sent


def test_a_request_cancelled_by_the_shutdown_is_answered_503():
    status, headers, body = _answer(_run(_cancelled_while_stopping(True, False)))
    assert status == 503
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"application/json"
    assert "grace period of 0.5 s was over" in body["error"]


@pytest.mark.parametrize(
    "stopping, started", [(False, False), (True, True)], ids=["not-stopping", "answer-started"]
)
def test_other_cancellations_are_not_turned_into_an_answer(stopping, started):
    sent = _run(_cancelled_while_stopping(stopping, started))
    assert sent[-1] == {"type": "cancelled"}
    assert all(m.get("status") != 503 for m in sent)


def test_a_model_call_that_cannot_be_stopped_gets_503_and_the_answered_ones_nothing():
    async def scenario() -> tuple[list[dict], list[dict]]:
        stuck_sent: list[dict] = []
        done_sent: list[dict] = []
        release = asyncio.Event()

        async def app(scope, receive, send) -> None:
            if scope["path"] == "/done":
                await send({"type": "http.response.start", "status": 200, "headers": []})
            await release.wait()

        async def collect(into):
            async def send(message):
                into.append(message)

            return send

        cut_off = _CutOff(app, grace=2)
        stuck = asyncio.ensure_future(cut_off(_http(), _receive, await collect(stuck_sent)))
        done = asyncio.ensure_future(
            cut_off({**_http(), "path": "/done"}, _receive, await collect(done_sent))
        )
        await asyncio.sleep(0.01)
        cut_off.stopping = True
        await cut_off.answer_the_rest()
        release.set()
        await asyncio.gather(stuck, done)
        return stuck_sent, done_sent

    stuck_sent, done_sent = _run(scenario())
    status, _, body = _answer(stuck_sent)
    assert status == 503 and "grace period of 2 s" in body["error"]
    assert [m["status"] for m in done_sent] == [200]


def test_scopes_other_than_http_pass_through():
    seen = []

    async def app(scope, receive, send) -> None:
        seen.append(scope["type"])

    async def send(message):
        pass

    _run(_CutOff(app, grace=1)({"type": "lifespan"}, _receive, send))
    assert seen == ["lifespan"]
