"""SIGTERM drains `cais serve`: new connections are refused, requests in flight are answered,
the process exits 0 (a replaced replica drops nothing)."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import pytest

from tests.support import free_port, save_sleeper, serve, start_server


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("cais-home")
    save_sleeper(home)
    return home


def _image_server(home, *options: str, env: dict | None = None):
    """`python -m cais.server` (the server inside a serving image) on a free port."""
    port = free_port()
    command = ["cais.server", "sleeper", "--port", str(port), *options]
    return start_server(command, port, env={"CAIS_HOME": str(home), **(env or {})})


def _refused(base: str) -> bool:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def _in_flight(base: str, body: dict, answers: list) -> threading.Thread:
    def send() -> None:
        try:
            answers.append(httpx.post(f"{base}/predict", json=body, timeout=60))
        except httpx.HTTPError as exc:
            answers.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def _wait_for(condition, what: str) -> None:
    for _ in range(300):
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"never: {what}")


@pytest.mark.parametrize(
    "start, workers",
    [("cais serve", "1"), ("cais serve", "2"), ("image", "1"), ("image", "2")],
)
def test_sigterm_finishes_the_request_in_flight_and_refuses_new_ones(
    home, tmp_path, start, workers
):
    if start == "image":
        process, base = _image_server(home, "--workers", workers)
    else:
        process, base = serve("sleeper", home=home, options=("--workers", workers))
    marker = tmp_path / "started"
    answers: list = []
    try:
        request = _in_flight(base, {"instances": [f"3 {marker}"]}, answers)
        _wait_for(marker.exists, "the request reached the model")
        process.send_signal(signal.SIGTERM)
        _wait_for(lambda: _refused(base), "new connections refused")
        assert request.is_alive()  # refused while the request in flight still runs
        assert all(_refused(base) for _ in range(5))
        request.join(timeout=60)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    (answer,) = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 200
    assert answer.json()["predictions"] == [f"3 {marker}"]


@pytest.mark.parametrize("start, workers", [("cais serve", "1"), ("image", "2")])
def test_a_request_longer_than_the_grace_period_does_not_hold_the_exit(
    home, tmp_path, start, workers
):
    if start == "image":
        process, base = _image_server(home, "--workers", workers, env={"CAIS_GRACE": "0.5"})
    else:
        options = ("--workers", workers, "--grace", "0.5")
        process, base = serve("sleeper", home=home, options=options)
    marker = tmp_path / "started"
    answers: list = []
    try:
        request = _in_flight(base, {"instances": [f"30 {marker}"]}, answers)
        _wait_for(marker.exists, "the request reached the model")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0  # long before the model's 30 s
        request.join(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    (answer,) = answers  # cut off once the grace period was over: told so, never a 500
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 503, answer.text
    assert "grace period of 0.5 s was over" in answer.json()["error"]
    assert answer.headers["connection"] == "close"


def test_a_serving_image_drains_on_docker_stop(
    home, cais, engine, base_image, image_name, container_name, ca_certs
):
    """The image's server, stopped as `docker stop` does, answers the request it is working
    on and exits 0; `cais check` watches it like any replica."""
    from tests.support import free_port, get_when_up

    tag = f"{image_name}:1"
    certs = [a for c in ca_certs for a in ("--ca-cert", str(c))]
    built = cais("build", "sleeper:1", "-t", tag, *certs, env={"CAIS_HOME": str(home)})
    assert built.returncode == 0, built.stderr
    port = free_port()
    ran = cais("run", "-d", "--name", container_name, "-p", f"127.0.0.1:{port}:8080", tag)
    assert ran.returncode == 0, ran.stderr
    base = f"http://127.0.0.1:{port}"
    assert get_when_up(f"{base}/health/ready").status_code == 200
    checked = cais("check", base, "-i", '"0.1"', "-e", "0.1", "-w", "30")
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.startswith('CAIS OK - sleeper:1 answered "0.1" in ')

    container = engine.containers.get(container_name)
    answers: list = []
    request = _in_flight(base, {"instances": ["3 /tmp/started"]}, answers)
    _wait_for(
        lambda: container.exec_run(["test", "-e", "/tmp/started"]).exit_code == 0,
        "the request reached the model",
    )
    container.kill(signal="SIGTERM")
    assert container.wait(timeout=60)["StatusCode"] == 0
    request.join(timeout=60)
    (answer,) = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.json()["predictions"] == ["3 /tmp/started"]
    stopped = cais("check", base, "-t", "2")
    assert stopped.returncode == 2, stopped.stdout
    assert stopped.stdout.startswith("CAIS CRITICAL - ")
