"""`cais serve --workers N`: models loaded once, workers forked, replaced when they die."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

import cais
from tests.support import free_port, run_cais, serve, text_model


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("timed out")


@pytest.fixture()
def home(tmp_path):
    cais.save_model(text_model(), "products", home=tmp_path)
    return tmp_path


def test_workers_are_forked_replaced_and_stopped(home):
    process, base = serve("products", home=home, options=("--workers", "2"))
    try:
        workers = _wait_for(lambda: len(_children(process.pid)) == 2 and _children(process.pid))
        with httpx.Client() as client:
            for _ in range(20):  # each worker has its own socket; every one answers
                response = client.post(f"{base}/predict", json={"instances": ["livro azul"]})
                assert response.status_code == 200, response.text
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = _wait_for(
            lambda: len(_children(process.pid)) == 2 and victim not in _children(process.pid)
        )
        assert replaced
        response = httpx.post(f"{base}/predict", json={"instances": ["livro azul"]})
        assert response.json()["predictions"] == ["livro"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert not _children(process.pid)


def test_workers_stop_when_the_supervisor_is_killed(home):
    process, base = serve("products", home=home, options=("--workers", "2"))
    workers = _wait_for(lambda: len(_children(process.pid)) == 2 and _children(process.pid))
    process.kill()  # SIGKILL: the supervisor cannot tell them
    process.wait(timeout=10)

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in workers)

    assert _wait_for(gone)
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{base}/predict", json={"instances": ["livro"]}, timeout=2)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_error(home, workers):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = run_cais(
            "serve",
            "products",
            "--port",
            str(port),
            "--workers",
            workers,
            env={"CAIS_HOME": str(home)},
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: Cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_server_cannot_share_the_port(home, workers):
    process, base = serve("products", home=home, options=("--workers", "2"))
    try:
        port = base.rsplit(":", 1)[1]
        result = run_cais(
            "serve", "products", "--port", port, "--workers", workers,
            env={"CAIS_HOME": str(home)}, timeout=60,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert f"error: Cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    finally:
        process.terminate()
        process.wait(timeout=15)
