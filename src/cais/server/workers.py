"""Run the server in one process, or in N worker processes forked after the models are loaded.

uvicorn's own `--workers` starts each worker as a fresh interpreter that imports everything and
loads every model again: slower to become ready, and N copies of the model in memory. Here the
supervising process loads the models once and forks; the workers share the model's pages
(copy-on-write, kept clean by `gc.freeze` before forking).

On Linux each worker gets its own listening socket bound with SO_REUSEPORT, so the kernel
spreads connections evenly instead of letting the first worker to wake take them all. The
supervisor opens the sockets before forking (a busy port fails once, in one place) and keeps
them open, so a worker that dies is replaced without dropping the connections queued for it.

SIGTERM drains (what `docker stop` and Kubernetes send before SIGKILL): every socket stops
listening at once, so new connections are refused and a load balancer tries another replica;
the requests in flight are answered (for at most `grace` seconds); then the process exits 0.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

__all__ = ["collector_paused", "listen", "serve"]

_RESTART_PAUSE = 1.0  # seconds between replacing workers that keep dying at start-up
_WATCH_INTERVAL = 0.5  # seconds between a worker's checks that its supervisor still lives
# Requests in flight get this long after SIGTERM: under the 10 s `docker stop` waits by default.
DEFAULT_GRACE = 8.0
_SETTLE = 0.5  # seconds the server's own tasks may take to end once it has shut down


class _Stopped(BaseException):
    """SIGTERM outside uvicorn's own handling: before the server runs (nothing to drain), or
    raised again by uvicorn once it has drained (its way of passing the signal on)."""


def _stopped(signum: int, frame: object) -> None:
    raise _Stopped


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collections while the server's and the models' modules load: nearly all of
    it is long-lived, and walking it again and again made start-up ~15 % slower. `serve`
    freezes what was loaded and collects again from there on; leaving, this does too."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def listen(host: str, port: int, workers: int = 1) -> list[socket.socket]:
    """The listening sockets of `workers` workers on host:port (port 0: one the system
    chooses); raises OSError when the address cannot be used. Called before the models
    load, a busy port fails at once."""
    forking = workers > 1 and hasattr(os, "fork")
    return _listening_sockets(host, port, workers if forking else 1)


def serve(
    app: object,
    sockets: list[socket.socket],
    *,
    log_level: str = "info",
    on_ready: Callable[[int], None] | None = None,
    grace: float = DEFAULT_GRACE,
) -> None:
    """Serve `app` on `sockets` (from `listen`, one worker each) until SIGINT/SIGTERM.
    `on_ready(port)` is called once every worker answers; on SIGTERM the requests in flight
    get `grace` seconds to finish."""
    # What exists now (the models, the app, every module) lives as long as the server: out of
    # the collector's sight, it is never walked again (a large model's object graph made p99
    # latency spikes), and forked workers keep sharing its pages. Python's recipe for servers
    # that fork: gc.disable() early (`collector_paused`), gc.freeze() before fork(),
    # gc.enable() in the children.
    gc.freeze()
    config = dict(
        log_level=log_level,
        access_log=False,  # the app logs requests itself
        timeout_graceful_shutdown=grace,
    )
    if len(sockets) == 1:
        gc.enable()
        port = sockets[0].getsockname()[1]
        started = (lambda: on_ready(port)) if on_ready else None
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            _server(app, config, started).run(sockets=sockets)
        except _Stopped:
            pass  # drained: a stop asked for is a clean exit
        finally:
            signal.signal(signal.SIGTERM, previous)
        return
    _Supervisor(app, sockets, config, on_ready).run()


def _server(app: object, config: dict, started: Callable[[], None] | None) -> Any:
    """A uvicorn server that calls `started()` once it accepts connections."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and started is not None:
                started()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            cut_off.stopping = True
            await super().shutdown(sockets=sockets)
            import asyncio

            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others and (await asyncio.wait(others, timeout=_SETTLE))[1]:
                # Past the grace period uvicorn cancelled the requests, but a model call in
                # its thread cannot be stopped, and the event loop would wait for it to end.
                # Its client is told so before the process goes.
                await cut_off.answer_the_rest()
                print(
                    "cais: a model call was still running after the grace period of "
                    f"{self.config.timeout_graceful_shutdown:g} s; stopping without it",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(0)

    cut_off = _CutOff(app, grace=config["timeout_graceful_shutdown"])
    return Server(uvicorn.Config(cut_off, **config))


class _CutOff:
    """ASGI middleware: a request still running when the grace period is over is answered
    503 (the client may send it again, to another replica), never left to uvicorn's 500 or
    a connection closed without an answer."""

    def __init__(self, app: Any, grace: float) -> None:
        self.app = app
        self.grace = grace
        self.stopping = False  # set by the server's shutdown
        self.running: dict[int, tuple[Callable, dict]] = {}  # request → (send, its state)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import asyncio

        state = {"started": False}

        async def tracked(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        key = id(state)
        self.running[key] = (send, state)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not self.stopping or state["started"]:
                raise
            await self._unavailable(send, state)  # cancelled by the shutdown: answered
        finally:
            self.running.pop(key, None)

    async def answer_the_rest(self) -> None:
        """503 to every request whose answer has not started (their model calls, in threads,
        cannot be stopped)."""
        for send, state in list(self.running.values()):
            if not state["started"]:
                await self._unavailable(send, state)

    async def _unavailable(self, send: Callable, state: dict) -> None:
        import json

        state["started"] = True
        body = json.dumps(
            {
                "error": "the server stopped before this request finished (its grace period "
                f"of {self.grace:g} s was over); send it again"
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except Exception:  # the client is gone: nobody to tell
            pass


def _listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on host:port (one shared socket where SO_REUSEPORT is not
    available, and for a single worker)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = count > 1 and hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
    if reuse_port and port != 0:  # port 0: the first socket's port, which nothing else has
        # SO_REUSEPORT would let these sockets share the port with another server of this
        # user's: bind once without it first, so a port in use is an error here too.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    sockets: list[socket.socket] = []
    for _ in range(count if reuse_port else 1):
        # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
        # connections whose socket says TCP; without it every keep-alive answer waits ~40 ms
        # for the client's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            for opened in sockets:
                opened.close()
            raise
        port = sock.getsockname()[1]  # the others share the port the system chose for 0
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets if reuse_port else sockets * count


class _Supervisor:
    def __init__(
        self,
        app: object,
        sockets: list[socket.socket],
        config: dict,
        on_ready: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.sockets = sockets
        self.config = config
        self.children: dict[int, int] = {}  # pid → worker index
        self.told: set[int] = set()  # workers sent SIGTERM
        self.stopping = False
        self.on_ready = on_ready
        # Each worker writes a byte here once it answers; the supervisor counts them.
        self.ready_pipe = os.pipe()
        self.ready = 0

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for index in range(len(self.sockets)):
            if not self.stopping:  # a SIGTERM during start-up: start no more
                self._start(index)
        gc.enable()
        while self.children:
            try:
                pid, status = self._wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                continue
            index = self.children.pop(pid, None)
            if index is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            print(f"cais: worker {pid} exited ({code}); starting another", file=sys.stderr)
            time.sleep(_RESTART_PAUSE)
            if not self.stopping:
                self._start(index)
        for sock in set(self.sockets):
            sock.close()
        for end in self.ready_pipe:
            os.close(end)

    def _wait(self) -> tuple[int, int]:
        """The next worker to exit, as os.wait(); (0, 0) after a while when not every worker
        has said it answers yet (their bytes on the pipe are counted meanwhile)."""
        if self.ready >= len(self.sockets):
            return os.wait()
        readable, _, _ = select.select([self.ready_pipe[0]], [], [], _WATCH_INTERVAL)
        if readable:
            self.ready += len(os.read(self.ready_pipe[0], 64))
            if self.ready >= len(self.sockets) and self.on_ready is not None:
                self.on_ready(self.sockets[0].getsockname()[1])
        return os.waitpid(-1, os.WNOHANG)

    def _start(self, index: int) -> None:
        # Signals wait until the child has its own handlers and the supervisor knows its pid,
        # so a SIGTERM in between neither reaches the supervisor's handler in the child nor
        # misses the new worker.
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        if self.stopping:  # the signal came just before the block: the sockets are closed
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            return
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, _stopped)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                self._work(self.sockets[index])
            except _Stopped:
                pass  # drained
            except BaseException:  # a worker must never return into the supervisor's loop
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        self.children[pid] = index
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        if self.stopping:  # the signal came just before the fork: this worker must stop too
            self._terminate(pid)

    def _work(self, sock: socket.socket) -> None:
        gc.enable()
        for other in set(self.sockets) - {sock}:
            other.close()
        os.close(self.ready_pipe[0])
        ready = self.ready_pipe[1]
        server = _server(self.app, self.config, lambda: os.write(ready, b"."))
        supervisor = os.getppid()

        def watch() -> None:  # a killed supervisor must not leave workers holding the port
            while not server.should_exit:
                if os.getppid() != supervisor:
                    server.should_exit = True
                time.sleep(_WATCH_INTERVAL)

        threading.Thread(target=watch, name="cais-supervisor-watch", daemon=True).start()
        server.run(sockets=[sock])

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        for pid in list(self.children):
            self._terminate(pid)
        # The workers stop listening as they drain; while this process still held the
        # sockets the kernel would keep queueing connections that nobody will answer.
        for sock in set(self.sockets):
            sock.close()

    def _terminate(self, pid: int) -> None:
        if pid in self.told:  # a second SIGTERM would make uvicorn skip its graceful shutdown
            return
        self.told.add(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
