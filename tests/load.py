"""A bounded load generator: a few threads post the same request at a steady pace and record
every answer (status, which model version answered, latency). Used by the Swarm rollout test
and by benchmarks/rolling_update.py, so both count failures the same way."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

__all__ = ["Answer", "Load", "percentile"]


@dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic() when the request was sent
    seconds: float
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    version: str | None  # the model version that answered
    error: str | None = None  # the transport error, or the body of a non-200 answer

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Load:
    """`with Load(url, body) as load:` sends requests until the block ends, or until
    `limit_s` seconds or `limit_requests` requests, whichever comes first."""

    url: str
    body: dict
    threads: int = 4
    pause_s: float = 0.05  # between one thread's requests: a steady load, not a flood
    limit_s: float = 600
    limit_requests: int = 100_000
    timeout_s: float = 30
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._send, daemon=True) for _ in range(self.threads)
        ]

    def __enter__(self) -> Load:
        self._ends = time.monotonic() + self.limit_s
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()

    @property
    def failed(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if not a.ok]

    def between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.started < end]

    def _send(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set() and time.monotonic() < self._ends:
                with self._lock:
                    if len(self.answers) >= self.limit_requests:
                        return
                self._record(client)
                self._stop.wait(self.pause_s)

    def _record(self, client: httpx.Client) -> None:
        started = time.monotonic()
        try:
            response = client.post(self.url, json=self.body)
        except httpx.HTTPError as exc:
            answer = Answer(started, time.monotonic() - started, 0, None, type(exc).__name__)
        else:
            seconds = time.monotonic() - started
            ok = response.status_code == 200
            version = response.json().get("version") if ok else None
            error = None if ok else response.text[:200]
            answer = Answer(started, seconds, response.status_code, version, error)
        with self._lock:
            self.answers.append(answer)


def percentile(values: list[float], share: float) -> float:
    """The value under which `share` (0..1) of `values` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]
