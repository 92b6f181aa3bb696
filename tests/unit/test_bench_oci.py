"""The OCI build benchmark's own arithmetic: what its byte counter counts, and how a figure
becomes a verdict (or says why it is missing). The benchmark runs by hand; its figures are
only as honest as these parts."""

from __future__ import annotations

import http.server
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
oci_build = pytest.importorskip("oci_build")


class _Sink(http.server.BaseHTTPRequestHandler):
    """Reads each request's body whole and answers with a fixed body."""

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"stored")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("size", [0, 1, 70_000, 1_000_003])
def test_proxy_counts_every_byte_sent_headers_included(upstream, size):
    proxy = oci_build.CountingProxy(upstream)
    try:
        body = b"x" * size
        request = urllib.request.Request(f"http://{proxy.address}/v2/blob", data=body, method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201
            assert answer.read() == b"stored"
        assert proxy.sent > size  # the body and the request line and headers
        assert proxy.sent - size < 400
        assert proxy.received > 6
        proxy.reset()
        assert (proxy.sent, proxy.received) == (0, 0)
    finally:
        proxy.close()


def _results(**runs: list[float]) -> list[dict]:
    count = max(len(values) for values in runs.values())
    return [
        {key: values[i] for key, values in runs.items() if i < len(values)} for i in range(count)
    ]


def _row(rows: list[dict], key: str) -> dict:
    return next(row for row in rows if row["key"] == key)


@pytest.mark.parametrize(
    ("ours", "theirs", "verdict"),
    [
        ([1.0, 1.2, 0.9], [3.0, 3.0, 3.0], "met"),  # at most 1/3, every run
        ([1.0, 1.1, 1.2], [3.0, 3.0, 3.0], "**not met**"),  # the median run above 1/3
        ([4.0], [3.0], "**not met**"),
    ],
)
def test_verdict_is_the_median_of_each_runs_ratio(ours, theirs, verdict):
    rows = oci_build.figures(_results(model_oci_cold=ours, model_docker_cold=theirs))
    row = _row(rows, "1")
    assert row["verdict"] == verdict
    assert row["ours"] == ours and row["theirs"] == theirs


def test_strict_target_is_not_met_on_equality():
    rows = oci_build.figures(_results(seed_oci_rss=[100.0], seed_largest_layer=[100.0]))
    assert _row(rows, "6s")["verdict"] == "**not met**"
    rows = oci_build.figures(_results(seed_oci_cold=[1.0], seed_bk_cold=[2.0]))
    assert _row(rows, "2")["verdict"] == "met"  # ≤ 0.5 holds on equality


def test_missing_figure_keeps_the_sentence_and_the_baseline():
    result = {
        "model_docker_cold": 16.0,
        "failures": {"model_oci_cold": "error: The OCI builder builds project folders"},
    }
    rows = oci_build.figures([result])
    row = _row(rows, "1")
    assert "ratio" not in row and "verdict" not in row
    assert row["missing"] == ["error: The OCI builder builds project folders"]
    assert row["theirs"] == [16.0]
    table = oci_build.table(rows)
    assert (
        "| 1 | cold build of the serving image, s | – | 16.00 | – | ≤ 1/3 | not measured |" in table
    )


@pytest.mark.parametrize(
    ("output", "code", "sentence"),
    [
        ("✓ [base] …\nerror: No such option: --push\n", 2, "error: No such option: --push"),
        ("Traceback …\nValueError: boom\n", 1, "exit 1: Traceback … / ValueError: boom"),
    ],
)
def test_error_sentence(output, code, sentence):
    assert oci_build.error_sentence(output, code) == sentence


def test_memory_of_a_command_is_its_own_not_the_forking_parents():
    from _common import run_sampled

    ballast = bytearray(200_000_000)  # the parent's size must not count as the child's
    seconds, output, code, memory = run_sampled(
        [
            sys.executable,
            "-c",
            "import time; b = bytearray(60_000_000); b[::4096] = b'x' * len(b[::4096]); "
            "print('held'); time.sleep(0.5)",
        ],
        env={},
    )
    del ballast
    assert (code, output.strip()) == (0, "held")
    assert 60_000_000 <= memory["peak_one_process"] < 150_000_000
    assert memory["peak_together"] >= memory["peak_one_process"]
    assert memory["rss_max"] <= memory["peak_together"]
    assert memory["largest_processes"][0][1] == memory["peak_one_process"]
