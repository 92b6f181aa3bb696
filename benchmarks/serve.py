#!/usr/bin/env python3
"""Serving benchmark: a cais serving image against the course's Flask + gunicorn API.

One run trains the products classifier on ../shared/data/produtos.csv (TF-IDF 1–2-grams +
logistic regression), saves it with `cais.save_model` into a temporary CAIS_HOME and dumps the
same fitted model with joblib, then builds two images from `python:3.11-slim`:

  cais      `cais build bench-products:1 -t bench-cais-serve:1` (run in a folder whose
            cais.yaml keeps the course's contract: `routes: [{path: /predizer_categoria,
            input: descricao, output: categoria}]`)
  baseline  benchmarks/baseline_flask/: Flask, gunicorn with 4 sync workers,
            POST /predizer_categoria {"descricao": ...} -> {"categoria": ...}

Each server runs alone (`docker run -d --network host`, bound to 127.0.0.1) and is measured:
cold start (docker run -> first correct prediction, polled every 20 ms, 3 times), throughput
and p99 with wrk (2 threads; 16 and 64 connections; one real listing a request; a 3-second
warm-up first; each load --repeat times, median), 64 listings a request against the model's
in-process batch speed, the memory of the server's processes during the 64-connection runs,
how the CPU time splits between its processes, and the image size. `cais serve` on the host,
keeping the same contract, is measured as a separate row.

    python benchmarks/serve.py [--duration 15] [--repeat 3] [--doc PATH | --no-doc]
                               [--keep-images] [--no-workers-4] [--no-host]
    python benchmarks/serve.py --render benchmarks/results/serve-STAMP.json

Needs the Docker Engine, Debian's /usr/bin/docker, the base image python:3.11-slim in the
engine, wrk, and cais installed with scikit-learn. The results replace the section between
`<!-- serve: begin -->` and `<!-- serve: end -->` of docs/benchmarks.md; the raw figures go
to benchmarks/results/ (ignored by git). Only the containers and images it made are removed.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    MemorySampler,
    memory_of,
    process_tree,
    products_csv,
    write_section,  # benchmarks/ is on sys.path when run as a script
)
from _common import run as run_command

DOCKER = "/usr/bin/docker"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
BASE_IMAGE = "python:3.11-slim"
REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = products_csv()
BASELINE_DIR = REPO_ROOT / "benchmarks" / "baseline_flask"
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SECTION_BEGIN = "<!-- serve: begin -->"
SECTION_END = "<!-- serve: end -->"

MODEL_NAME = "bench-products"
CAIS_IMAGE = "bench-cais-serve:1"
BASELINE_IMAGE = "bench-baseline-flask:1"
CONTAINER_PREFIX = "bench-serve-"
ROUTE = {"path": "/predizer_categoria", "input": "descricao", "output": "categoria"}
PINNED = ("scikit-learn", "numpy", "scipy", "joblib")  # the baseline's pins, from the host

THREADS = 2
CONNECTIONS = (16, 64)
BATCH_CONNECTIONS = 16
BATCH = 64
WARMUP_SECONDS = 3
COLD_STARTS = 3
POLL_SECONDS = 0.02
SAMPLE_TEXTS = 512  # real listings the one-instance load cycles through
BATCHES = 32  # distinct 64-listing bodies the batch load cycles through

TARGETS = {
    "throughput": "one-instance throughput ≥ 1.5 × the baseline's",
    "p99": "one-instance p99 ≤ the baseline's",
    "batch": "64-instance throughput ≥ 70 % of the in-process batch speed",
    "cold": "cold start ≤ 1.5 s",
    "memory": "memory under load ≤ 0.75 × the baseline's",
    "image": "image ≤ 0.8 × the baseline's",
}


# ----------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[serve {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(args: list[str], *, timeout: float = 900, **options) -> tuple[float, str, int]:
    return run_command(args, timeout=timeout, **options)


def docker(*args: str, check: bool = True, timeout: float = 900) -> str:
    return run([DOCKER, *args], check=check, timeout=timeout)[1].strip()


def image_id(reference: str) -> str | None:
    _, out, code = run([DOCKER, "image", "inspect", "-f", "{{.Id}}", reference], check=False)
    return out.strip() if code == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cais_command() -> list[str]:
    beside = Path(sys.executable).parent / "cais"
    if os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("cais")
    return [found] if found else [sys.executable, "-m", "cais"]


def cais_source() -> str:
    import cais

    package = Path(cais.__file__).parent
    _, commit, code = run(["git", "-C", str(package), "log", "-1", "--format=%h"], check=False)
    if code != 0:
        return f"`{package}`"
    _, dirty, _ = run(["git", "-C", str(package), "status", "--porcelain", "--", "."], check=False)
    return f"git commit {commit.strip()}" + (" with local changes" if dirty.strip() else "")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine() -> dict:
    import sklearn

    import cais

    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {
        "date": run(["date", "-u"])[1].strip(),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "kernel": platform.release(),
        "docker_engine": docker("version", "-f", "{{.Server.Version}}"),
        "docker_cli": docker("version", "-f", "{{.Client.Version}}"),
        "wrk": run([WRK, "-v"], check=False)[1].splitlines()[0].split(" Copyright")[0].strip(),
        "cais": cais.__version__,
        "cais_source": cais_source(),
        "python": platform.python_version(),
        "scikit_learn": sklearn.__version__,
        "base_image_id": (image_id(BASE_IMAGE) or "")[7:19],
    }


# ----------------------------------------------------------------------------- the model


def read_listings() -> tuple[list[str], list[str]]:
    with DATA.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    texts = [(r["nome"] or "") + " " + (r["descricao"] or "") for r in rows]
    return texts, [r["categoria"] for r in rows]


def train(texts: list[str], labels: list[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model = Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2)),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )
    return model.fit(texts, labels)


def save(model, example: list[str], home: Path) -> tuple[str, None]:
    """`cais.save_model` into the benchmark's own CAIS_HOME (the second value is a note for
    the report, kept for results files that carry one)."""
    import cais

    return cais.save_model(model, MODEL_NAME, input_example=example, home=home), None


def in_process_speed(model, sample: list[str], batches: list[list[str]], seconds: float) -> dict:
    """Rows a second of `model.predict` in this process: one listing a call, and 64."""

    def rate(calls: list[list[str]]) -> float:
        for call in calls[:4]:
            model.predict(call)
        rows, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for call in calls:
                model.predict(call)
                rows += len(call)
        return rows / (time.perf_counter() - started)

    return {
        "single_rows_per_s": rate([[t] for t in sample]),
        "batch_rows_per_s": rate(batches),
    }


# ----------------------------------------------------------------------------- images


def build_cais(cais: list[str], home: Path, folder: Path) -> dict:
    """`cais build` in a folder whose cais.yaml keeps the course's contract."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cais.yaml").write_text(
        "routes:\n"
        f"  - {{path: {ROUTE['path']}, input: {ROUTE['input']}, output: {ROUTE['output']}}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "CAIS_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    seconds, out, _ = run(
        [*cais, "build", f"{MODEL_NAME}:1", "-t", CAIS_IMAGE], env=env, cwd=folder
    )
    return {
        "seconds": seconds,
        "id": image_id(CAIS_IMAGE),
        "log_tail": out.strip().splitlines()[-3:],
    }


def build_baseline(model_file: Path, folder: Path, versions: dict[str, str]) -> dict:
    shutil.copytree(BASELINE_DIR, folder)
    shutil.copy(model_file, folder / "model.joblib")
    args = []
    for name in PINNED:
        args += ["--build-arg", f"{name.upper().replace('-', '_')}={versions[name]}"]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_BUILDKIT"}
    seconds, out, _ = run([DOCKER, "build", *args, "-t", BASELINE_IMAGE, str(folder)], env=env)
    return {"seconds": seconds, "id": image_id(BASELINE_IMAGE), "build_args": args}


def image_size(reference: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", reference))


def pip_versions(image: str) -> dict[str, str]:
    out = docker(
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "python",
        "-m",
        "pip",
        "list",
        "--format",
        "json",
        "--disable-pip-version-check",
    )
    line = next(line for line in out.splitlines() if line.startswith("["))
    return {p["name"].lower(): p["version"] for p in json.loads(line)}


IN_IMAGE_SCRIPT = r"""
import gc, json, platform, sys, time
t0 = time.perf_counter()
import sklearn.base
t_sklearn = time.perf_counter() - t0
from cais.server.app import create_app
from cais.server.models import ModelSet
t1 = time.perf_counter()
served = ModelSet.load(["/model"])
t_load = time.perf_counter() - t1
create_app(served)
t_all = time.perf_counter() - t0
model = served.all()[0].model
gc.collect()
gc.freeze()
bodies = json.load(open("/bench.json", encoding="utf-8"))

def rate(calls, seconds):
    for call in calls[:4]:
        model.predict(call)
    rows, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for call in calls:
            model.predict(call)
            rows += len(call)
    return rows / (time.perf_counter() - started)

print(json.dumps({
    "python": platform.python_version(),
    "start": {"import_and_load": t_all, "sklearn": t_sklearn, "load": t_load},
    "single_rows_per_s": rate([[t] for t in bodies["sample"]], float(sys.argv[1])),
    "batch_rows_per_s": rate(bodies["batches"], float(sys.argv[1])),
}))
"""

SITE_PACKAGES_SCRIPT = r"""
import json, os, site
root = site.getsitepackages()[0]
sizes = {}
for entry in os.scandir(root):
    total = 0
    if entry.is_dir(follow_symlinks=False):
        for folder, _, files in os.walk(entry.path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    pass
    else:
        total = entry.stat(follow_symlinks=False).st_size
    key = entry.name
    if key.endswith((".dist-info", ".egg-info", ".pth")) or key == "__pycache__":
        key = "(metadata)"
    sizes[key] = sizes.get(key, 0) + total
print(json.dumps(sizes))
"""


def in_image_speed(image: str, bodies: Path, seconds: float) -> dict:
    """Start-up and `model.predict` speed in a container of the cais image."""
    out = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{bodies}:/bench.json:ro",
        image,
        "python",
        "-c",
        IN_IMAGE_SCRIPT,
        str(seconds),
        timeout=300,
    )
    return json.loads(out.splitlines()[-1])


def site_packages(image: str) -> dict[str, float]:
    out = docker("run", "--rm", "--network", "none", image, "python", "-c", SITE_PACKAGES_SCRIPT)
    sizes = json.loads(out.splitlines()[-1])
    return {name: size / 1e6 for name, size in sizes.items()}


def docker_run_seconds(image: str, times: int = 3) -> float:
    return statistics.median(
        run([DOCKER, "run", "--rm", "--network", "none", image, "true"])[0] for _ in range(times)
    )


# ----------------------------------------------------------------------------- servers


@dataclass
class Server:
    key: str
    label: str
    path: str  # the one-instance endpoint
    body: callable  # text -> request body (dict)
    answer: callable  # response JSON -> the predicted class
    start: callable  # port -> (handle, seconds the start command took)
    stop: callable
    pids: callable  # handle -> root pid of its processes
    batch_path: str | None = None
    results: dict = field(default_factory=dict)


def cais_body(text: str) -> dict:
    return {"instances": [text]}


def cais_answer(data: dict) -> str:
    return data["predictions"][0]


def route_body(text: str) -> dict:
    return {ROUTE["input"]: text}


def route_answer(data: dict) -> str:
    return data[ROUTE["output"]]


_containers: list[str] = []


def container_starter(image: str, command: list[str]):
    def start(port: int) -> str:
        name = f"{CONTAINER_PREFIX}{os.getpid()}-{len(_containers)}"
        _containers.append(name)
        args = [part.replace("{port}", str(port)) for part in command]
        docker("run", "-d", "--network", "host", "--name", name, image, *args)
        return name

    return start


def container_stop(name: str) -> None:
    docker("rm", "-f", name, check=False)


def container_pid(name: str) -> int:
    return int(docker("inspect", "-f", "{{.State.Pid}}", name))


def host_starter(cais: list[str], home: Path, folder: Path, workers: int):
    def start(port: int) -> subprocess.Popen:
        env = {**os.environ, "CAIS_HOME": str(home), "NO_COLOR": "1"}
        return subprocess.Popen(
            [
                *cais,
                "serve",
                f"{MODEL_NAME}:1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--config",
                str(folder / "cais.yaml"),
            ],
            env=env,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    return start


def host_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def post(port: int, path: str, body: dict, timeout: float = 30) -> tuple[int, dict | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode()
        connection.request("POST", path, data, {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, None
    finally:
        connection.close()


def wait_for_prediction(server: Server, port: int, text: str, expected: str, limit: float) -> None:
    deadline = time.perf_counter() + limit
    last = ""
    while time.perf_counter() < deadline:
        try:
            status, data = post(port, server.path, server.body(text))
            if status == 200 and data is not None and server.answer(data) == expected:
                return
            last = f"HTTP {status}: {data!r}"[:300]
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"{server.label} gave no correct prediction within {limit:.0f} s ({last})")


def cold_start(server: Server, text: str, expected: str) -> float:
    port = free_port()
    started = time.perf_counter()
    handle = server.start(port)
    try:
        wait_for_prediction(server, port, text, expected, 120)
        return time.perf_counter() - started
    finally:
        server.stop(handle)


# ----------------------------------------------------------------------------- memory


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each process, in clock ticks."""
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def cpu_split(before: dict[int, int], after: dict[int, int]) -> list[int]:
    """Each busy process's share of the CPU time used, in per cent, largest first."""
    used = {pid: after[pid] - before.get(pid, 0) for pid in after}
    total = sum(used.values()) or 1
    return sorted(
        (round(100 * u / total) for u in used.values() if u / total >= 0.02), reverse=True
    )


# ----------------------------------------------------------------------------- wrk


def lua_script(path: Path, url_path: str, bodies: list[str]) -> Path:
    level = "=" * 3
    while any(f"]{level}]" in b for b in bodies):
        level += "="
    items = ",\n".join(f"[{level}[{b}]{level}]" for b in bodies)
    path.write_text(
        "local bodies = {\n" + items + "\n}\n"
        "local n = #bodies\n"
        "local i = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n"
        "  i = (i % n) + 1\n"
        f'  return wrk.format("POST", "{url_path}", headers, bodies[i])\n'
        "end\n",
        encoding="utf-8",
    )
    return path


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(port: int, script: Path, connections: int, seconds: float, path: str) -> dict:
    args = [
        WRK,
        "-t",
        str(THREADS),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    load = loadavg()
    _, out, _ = run(args, timeout=seconds + 60)
    result = {"load1_before": load, "raw": out}
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match.group(1)) if match else 0.0
    match = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    result["requests"] = int(match.group(1)) if match else 0
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result[f"p{pct}"] = _seconds(match.group(1)) if match else None
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(g) for g in match.groups()) if match else 0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(match.group(1)) if match else 0
    return result


# ----------------------------------------------------------------------------- measuring


def loaded_run(
    port: int, root: int, script: Path, connections: int, seconds: float, path: str
) -> dict:
    """One wrk run, with the memory and the CPU time of the server's processes, and the CPU
    time the rest of the machine used meanwhile (other processes, and time stolen by the
    hypervisor), to show how quiet the machine was."""
    sampler = MemorySampler(root)
    before = cpu_ticks(process_tree(root))
    machine_before, mine_before = machine_ticks(), os.times()
    sampler.start()
    figures = wrk(port, script, connections, seconds, path)
    figures["memory"] = sampler.result()
    after = cpu_ticks(process_tree(root))
    machine_after, mine_after = machine_ticks(), os.times()
    figures["cpu_split"] = cpu_split(before, after)
    hz = os.sysconf("SC_CLK_TCK")
    capacity = (machine_after["total"] - machine_before["total"]) or 1
    server = sum(after[p] - before.get(p, 0) for p in after)
    mine = (
        (  # this script, and wrk and the docker CLI it waited for
            sum(mine_after[:4]) - sum(mine_before[:4])
        )
        * hz
    )
    busy = machine_after["busy"] - machine_before["busy"]
    figures["others_cpu"] = max(0.0, (busy - server - mine) / capacity)
    figures["steal"] = (machine_after["steal"] - machine_before["steal"]) / capacity
    figures["server_cpu"] = server / capacity
    return figures


def machine_ticks() -> dict[str, int]:
    """All CPUs' ticks from /proc/stat: total, busy (not idle or iowait), stolen."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return {
        "total": sum(fields),
        "busy": user + nice + system + irq + softirq,
        "steal": steal,
    }


def summarize(runs: list[dict]) -> dict:
    """The median run's figures, with every run kept."""

    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    return {
        "rps": med("rps"),
        "p50": med("p50"),
        "p90": med("p90"),
        "p99": med("p99"),
        "rows_per_s": med("rows_per_s"),
        "memory": {
            "rss_max": max(r["memory"].get("rss_max", 0) for r in runs),
            "pss_max": max(r["memory"].get("pss_max", 0) for r in runs),
            "processes": max(r["memory"].get("processes", 0) for r in runs),
        },
        "others_cpu_max": max(r.get("others_cpu", 0) for r in runs),
        "steal_max": max(r.get("steal", 0) for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "runs": runs,
    }


def measure_server(
    server: Server,
    scripts: dict[str, Path],
    *,
    duration: float,
    repeat: int,
    probe: list[tuple[str, str]],
    cold_starts: bool,
) -> dict:
    """Cold starts, then one instance running under every load, `repeat` times each."""
    results: dict = {}
    text, expected = probe[0]
    if cold_starts:
        results["cold"] = []
        for attempt in range(COLD_STARTS):
            seconds = cold_start(server, text, expected)
            results["cold"].append(seconds)
            log(f"{server.label}: cold start {attempt + 1}: {seconds:.3f} s")
    port = free_port()
    handle = server.start(port)
    try:
        wait_for_prediction(server, port, text, expected, 120)
        wrong = [
            t
            for t, want in probe
            if server.answer(post(port, server.path, server.body(t))[1]) != want
        ]
        results["probe"] = {"listings": len(probe), "wrong": len(wrong)}
        root = server.pids(handle)
        wrk(port, scripts["one"], CONNECTIONS[0], WARMUP_SECONDS, server.path)
        loads = [("one", c, server.path) for c in CONNECTIONS]
        if server.batch_path:
            loads.append(("batch", BATCH_CONNECTIONS, server.batch_path))
        for kind, connections, path in loads:
            if kind == "batch":
                wrk(port, scripts["batch"], connections, WARMUP_SECONDS, path)
            runs = []
            for _ in range(repeat):
                figures = loaded_run(port, root, scripts[kind], connections, duration, path)
                if kind == "batch":
                    figures["rows_per_s"] = figures["rps"] * BATCH
                runs.append(figures)
                log(
                    f"{server.label}: {kind} {connections} connections: {figures['rps']:.0f} req/s"
                    + (f" ({figures['rows_per_s']:.0f} rows/s)" if kind == "batch" else "")
                    + f", p99 {figures['p99'] * 1000:.1f} ms, "
                    f"RSS {figures['memory'].get('rss_max', 0) / 1e6:.0f} MB, "
                    f"CPU split {'/'.join(map(str, figures['cpu_split']))}, "
                    f"others {figures['others_cpu'] * 100:.0f} %, "
                    f"errors {figures['socket_errors']} + {figures['non_2xx']} non-2xx"
                )
            results[f"{kind}_c{connections}"] = summarize(runs)
        results["idle_memory"] = dict(
            zip(("rss", "pss"), memory_of(process_tree(root)), strict=True)
        )
    finally:
        server.stop(handle)
    return results


# ----------------------------------------------------------------------------- report


def mb(value: float) -> str:
    return f"{value / 1e6:.0f}"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def evaluate(res: dict, inproc: dict) -> dict:
    """Each target, on cais's default server (one worker per CPU) against the baseline."""
    cais, base = res["cais"], res["baseline"]
    out = {}
    tput = [cais[f"one_c{c}"]["rps"] / base[f"one_c{c}"]["rps"] for c in CONNECTIONS]
    out["throughput"] = (
        all(t >= 1.5 for t in tput),
        ", ".join(f"×{t:.2f} at {c} connections" for t, c in zip(tput, CONNECTIONS, strict=True)),
    )
    p99 = [cais[f"one_c{c}"]["p99"] / base[f"one_c{c}"]["p99"] for c in CONNECTIONS]
    out["p99"] = (
        all(p <= 1.0 for p in p99),
        ", ".join(f"×{p:.2f} at {c} connections" for p, c in zip(p99, CONNECTIONS, strict=True)),
    )
    rows = cais[f"batch_c{BATCH_CONNECTIONS}"]["rows_per_s"]
    share = rows / inproc["batch_rows_per_s"]
    text = f"{rows:,.0f} rows/s = {share * 100:.0f} % of {inproc['batch_rows_per_s']:,.0f}"
    if res.get("in_image"):
        image_rows = res["in_image"]["batch_rows_per_s"]
        text += f" (and {rows / image_rows * 100:.0f} % of the image's Python: {image_rows:,.0f})"
    out["batch"] = (share >= 0.7, text)
    cold = statistics.median(cais["cold"])
    out["cold"] = (
        cold <= 1.5,
        f"{cold:.2f} s (the baseline's: {statistics.median(base['cold']):.2f} s, "
        f"×{cold / statistics.median(base['cold']):.2f})",
    )
    last = f"one_c{CONNECTIONS[-1]}"
    mem = cais[last]["memory"]["rss_max"] / base[last]["memory"]["rss_max"]
    out["memory"] = (
        mem <= 0.75,
        f"×{mem:.2f} ({mb(cais[last]['memory']['rss_max'])} against "
        f"{mb(base[last]['memory']['rss_max'])} MB)",
    )
    size = res["sizes"]["cais"] / res["sizes"]["baseline"]
    out["image"] = (
        size <= 0.8,
        f"×{size:.4f} ({res['sizes']['cais'] / 1e6:.1f} against "
        f"{res['sizes']['baseline'] / 1e6:.1f} MB)",
    )
    return out


def ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"×{a / b:.2f}"


def spread(data: dict, key: str, show) -> str:
    """The median, and the range over the runs when there are several."""
    values = [r[key] for r in data["runs"] if r.get(key) is not None]
    text = show(data[key])
    if len(values) > 1:
        text += f" ({show(min(values))}–{show(max(values))})"
    return text


def splits(data: dict) -> str:
    return ", ".join("/".join(map(str, r["cpu_split"])) or "–" for r in data["runs"])


def one_sided_runs(data: dict, workers: int) -> list[dict]:
    """Runs in which fewer worker processes than there are did the work."""
    return [r for r in data["runs"] if len([x for x in r["cpu_split"] if x >= 10]) < workers]


def section(info: dict, opts: argparse.Namespace, res: dict, inproc: dict, notes: dict) -> str:
    cais, base = res["cais"], res["baseline"]
    extra = res.get("cais_w4")
    routes = res.get("cais_routes")
    host = res.get("host_routes")
    image = res.get("in_image")
    targets = evaluate(res, inproc)
    duration = f"{opts.duration:g}"
    pins = ", ".join(f"{n} {res['versions'][n]}" for n in PINNED)
    extra_pkgs = ", ".join(f"{n} {v}" for n, v in res["baseline_extra"].items())
    lines = [
        SECTION_BEGIN,
        "## Serving: a cais serving image against the course's Flask + gunicorn API",
        "",
        f"Measured with `python benchmarks/serve.py --duration {duration} --repeat "
        f"{opts.repeat}` on {info['date']}.",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB of memory, "
        f"Linux {info['kernel']}; Docker Engine {info['docker_engine']} with its CLI "
        f"{info['docker_cli']} (`/usr/bin/docker`); {info['wrk']}; cais {info['cais']} "
        f"(from {info['cais_source']}); Python {info['python']}, scikit-learn "
        f"{info['scikit_learn']}; base image `{BASE_IMAGE}` (`{info['base_image_id']}`, "
        f"Python {res.get('image_python', '?')}).",
        "",
        "The model is the products classifier: `Pipeline([TfidfVectorizer(ngram_range=(1, 2), "
        "min_df=2), LogisticRegression(max_iter=1000)])` trained on all "
        f"{res['listings']:,} listings of `produtos.csv` (text: `nome + ' ' + descricao`). The "
        "same fitted object is saved with `cais.save_model` (for cais) and with `joblib.dump` "
        "(for the baseline). The baseline is the course's API, "
        "[benchmarks/baseline_flask/](../benchmarks/baseline_flask/): Flask, the model loaded "
        'with joblib at start, `POST /predizer_categoria {"descricao": …} → '
        '{"categoria": …}`, gunicorn with 4 sync workers, scikit-learn, numpy, scipy and '
        f"joblib pinned to the trainer's versions ({pins}); its image also holds {extra_pkgs}.",
        "",
    ]
    if notes.get("save"):
        lines += [f"Note: {notes['save']}.", ""]
    lines += [
        "Commands (PORT is a free port on 127.0.0.1; each server runs alone):",
        "",
        "```sh",
        '# train, then cais.save_model(model, "bench-products", input_example=[two listings], '
        "home=$CAIS_HOME) and joblib.dump(model, …)",
        f"cd DIR   # its cais.yaml: routes: [{{path: {ROUTE['path']}, input: {ROUTE['input']}, "
        f"output: {ROUTE['output']}}}]",
        f"CAIS_HOME=$CAIS_HOME cais build {MODEL_NAME}:1 -t {CAIS_IMAGE}",
        f"/usr/bin/docker build {' '.join(res['baseline_build_args'])} -t {BASELINE_IMAGE} "
        "COPY_OF_baseline_flask_WITH_model.joblib",
        "# cais, its default server: one worker per CPU (2 here)",
        f"/usr/bin/docker run -d --network host {CAIS_IMAGE} python -m cais.server /model "
        "--host 127.0.0.1 --port PORT",
        "# cais with 4 workers",
        f"/usr/bin/docker run -d --network host {CAIS_IMAGE} python -m cais.server /model "
        "--host 127.0.0.1 --port PORT --workers 4",
        "# baseline (its CMD binds 0.0.0.0:5000, taken on this machine: the same command on "
        "another port)",
        f"/usr/bin/docker run -d --network host {BASELINE_IMAGE} gunicorn -w 4 -b "
        "127.0.0.1:PORT app:app",
        "# cais serve on the host, keeping the course's contract",
        f"CAIS_HOME=$CAIS_HOME cais serve {MODEL_NAME}:1 --host 127.0.0.1 --port PORT "
        f"--workers {opts.host_workers} --config DIR/cais.yaml",
        f"# load, after a {WARMUP_SECONDS}-second warm-up; each run {opts.repeat} times on the "
        "same server",
        f"wrk -t {THREADS} -c 16 -d {duration}s --latency --timeout 10s -s one.lua "
        'http://127.0.0.1:PORT/predict   # cais: {"instances": [TEXT]}',
        f"wrk -t {THREADS} -c 64 -d {duration}s --latency --timeout 10s -s one.lua "
        "http://127.0.0.1:PORT/predict",
        f"wrk -t {THREADS} -c 16 -d {duration}s --latency --timeout 10s -s route.lua "
        "http://127.0.0.1:PORT/predizer_categoria   # baseline and kept contract: "
        '{"descricao": TEXT}',
        f"wrk -t {THREADS} -c 64 -d {duration}s --latency --timeout 10s -s route.lua "
        "http://127.0.0.1:PORT/predizer_categoria",
        f"wrk -t {THREADS} -c {BATCH_CONNECTIONS} -d {duration}s --latency --timeout 10s "
        f"-s batch.lua http://127.0.0.1:PORT/predict   # {BATCH} different listings a request",
        "```",
        "",
        f"Every request carries real listings: one.lua and route.lua cycle through the same "
        f"{SAMPLE_TEXTS} listings, batch.lua through {BATCHES} bodies of {BATCH} different "
        "listings. Before the load, each server answered "
        f"{res['probe_size']} listings exactly as the model does in-process "
        f"({', '.join(f'{k}: {v} wrong' for k, v in res['probe_wrong'].items())}). "
        "Cold start: the wall time from `docker run -d` to the first correct prediction, polled "
        f"every {POLL_SECONDS * 1000:.0f} ms, {COLD_STARTS} times (median and range). Throughput "
        f"and latency: the median of the {opts.repeat} runs, their range in brackets. CPU split: "
        "each busy process's share of the server's CPU time during a run (one entry per run; "
        "a single number means one process did all the work). Memory: the sum of the resident "
        "set sizes (RSS) of all the server's processes, sampled every 0.25 s during the "
        f"{CONNECTIONS[-1]}-connection runs, maximum (the sum of their proportional set sizes, "
        "PSS, which counts shared pages once, in brackets). Image size: "
        "`docker image inspect -f '{{.Size}}'`, base image included, MB = 10⁶ bytes. "
        "In-process speed: `model.predict` on the same bodies, one thread, in the benchmark's "
        "process (the figure the target uses) and in a container of the cais image (its "
        "Python, the model loaded as the server loads it).",
        "",
        "### Results",
        "",
    ]
    servers = [cais, extra, base] if extra else [cais, base]
    head = ["measure", "cais (default: 2 workers)"]
    if extra:
        head.append("cais --workers 4")
    head += ["baseline: Flask + gunicorn -w 4", "cais ÷ baseline"]
    if extra:
        head.append("cais -w 4 ÷ baseline")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, cells: list[str], ratios: list[str]) -> None:
        lines.append("| " + " | ".join([label, *cells, *ratios]) + " |")

    colds = [statistics.median(s["cold"]) for s in servers]
    row(
        "cold start, s",
        [
            f"{statistics.median(s['cold']):.2f} ({min(s['cold']):.2f}–{max(s['cold']):.2f})"
            for s in servers
        ],
        [ratio(c, colds[-1]) for c in colds[:-1]],
    )
    for c in CONNECTIONS:
        key = f"one_c{c}"
        row(
            f"one listing a request, {c} connections: requests/s",
            [spread(s[key], "rps", lambda v: f"{v:,.0f}") for s in servers],
            [ratio(s[key]["rps"], base[key]["rps"]) for s in servers[:-1]],
        )
        row(
            "… p99 latency, ms",
            [spread(s[key], "p99", ms) for s in servers],
            [ratio(s[key]["p99"], base[key]["p99"]) for s in servers[:-1]],
        )
        row(
            "… p50 latency, ms",
            [spread(s[key], "p50", ms) for s in servers],
            [ratio(s[key]["p50"], base[key]["p50"]) for s in servers[:-1]],
        )
        row(
            "… CPU split between the server's processes, % (each run)",
            [splits(s[key]) for s in servers],
            ["", ""][: len(servers) - 1],
        )
    key = f"one_c{CONNECTIONS[-1]}"
    row(
        f"memory under load ({CONNECTIONS[-1]} connections), MB: RSS sum (PSS sum)",
        [f"{mb(s[key]['memory']['rss_max'])} ({mb(s[key]['memory']['pss_max'])})" for s in servers],
        [ratio(s[key]["memory"]["rss_max"], base[key]["memory"]["rss_max"]) for s in servers[:-1]],
    )
    row(
        "processes of the server",
        [str(s[key]["memory"]["processes"]) for s in servers],
        ["", ""][: len(servers) - 1],
    )
    size_c, size_b = res["sizes"]["cais"], res["sizes"]["baseline"]
    sizes = [size_c] * (len(servers) - 1) + [size_b]
    row("image size, MB", [f"{v / 1e6:.1f}" for v in sizes], [ratio(v, size_b) for v in sizes[:-1]])
    bkey = f"batch_c{BATCH_CONNECTIONS}"
    row(
        f"{BATCH} listings a request, {BATCH_CONNECTIONS} connections: listings/s",
        [spread(s[bkey], "rows_per_s", lambda v: f"{v:,.0f}") for s in servers[:-1]]
        + ["– (one listing a request only)"],
        [
            f"{s[bkey]['rows_per_s'] / inproc['batch_rows_per_s'] * 100:.0f} % of in-process"
            for s in servers[:-1]
        ],
    )
    row(
        "… p99 latency, ms",
        [spread(s[bkey], "p99", ms) for s in servers[:-1]] + ["–"],
        ["", ""][: len(servers) - 1],
    )
    lines += [
        "",
        f"In-process `model.predict`, one thread: {inproc['batch_rows_per_s']:,.0f} listings/s "
        f"with {BATCH} a call, {inproc['single_rows_per_s']:,.0f} with one a call (benchmark's "
        f"process, Python {info['python']})"
        + (
            f"; {image['batch_rows_per_s']:,.0f} and {image['single_rows_per_s']:,.0f} in the "
            f"cais image (Python {res.get('image_python', '?')})"
            if image
            else ""
        )
        + f". The servers use {info['nproc']} CPUs.",
        "",
    ]
    if image:
        lines += [
            f"Start-up inside the cais image, one process: importing the server and loading the "
            f"model takes {image['start']['import_and_load']:.2f} s (of which importing "
            f"scikit-learn {image['start']['sklearn']:.2f} s, loading the bundle "
            f"{image['start']['load']:.2f} s); `docker run --rm IMAGE true` takes "
            f"{res['docker_run_true']:.2f} s. Of cais's median cold start "
            f"({statistics.median(cais['cold']):.2f} s), these two account for "
            f"{image['start']['import_and_load'] + res['docker_run_true']:.2f} s (each measured "
            "alone, so the two overlap a little with the rest: the supervising process loads "
            "the model once, then forks the workers, which answer the first request).",
            "",
        ]
    if res.get("site_packages"):
        sp = res["site_packages"]
        names = sorted(
            set(sp["cais"]) | set(sp["baseline"]),
            key=lambda n: -max(sp["cais"].get(n, 0), sp["baseline"].get(n, 0)),
        )[:14]
        lines += [
            "Where the images' bytes are (`du` of site-packages, MB; both share the base image):",
            "",
            "| | " + " | ".join(f"`{n}`" for n in names) + " | total |",
            "|---|" + "---|" * (len(names) + 1),
            "| cais | "
            + " | ".join(f"{sp['cais'].get(n, 0):.0f}" for n in names)
            + f" | {sp['cais_total']:.0f} |",
            "| baseline | "
            + " | ".join(f"{sp['baseline'].get(n, 0):.0f}" for n in names)
            + f" | {sp['baseline_total']:.0f} |",
            "",
        ]
    if routes or host:
        lines += [
            "#### The course's contract, `POST /predizer_categoria`, on both sides",
            "",
            "| server | connections | requests/s | p99, ms | p50, ms | CPU split, % | memory, "
            "MB RSS (PSS) | ÷ baseline, requests/s | ÷ baseline, p99 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, data in (
            ("cais image, 2 workers (`routes:` from cais.yaml, carried by the image)", routes),
            (f"`cais serve` on the host, --workers {opts.host_workers} (no container)", host),
            ("baseline: Flask + gunicorn -w 4", base),
        ):
            if not data:
                continue
            for c in CONNECTIONS:
                f = data[f"one_c{c}"]
                b = base[f"one_c{c}"]
                lines.append(
                    f"| {label} | {c} | {spread(f, 'rps', lambda v: f'{v:,.0f}')} | "
                    f"{spread(f, 'p99', ms)} | {spread(f, 'p50', ms)} | {splits(f)} | "
                    f"{mb(f['memory']['rss_max'])} ({mb(f['memory']['pss_max'])}) | "
                    f"{ratio(f['rps'], b['rps'])} | {ratio(f['p99'], b['p99'])} |"
                )
        lines.append("")
    errors = []
    for key, data in res.items():
        if isinstance(data, dict) and "one_c16" in data:
            for load, figures in data.items():
                if (
                    isinstance(figures, dict)
                    and "runs" in figures
                    and (figures["socket_errors"] or figures["non_2xx"])
                ):
                    errors.append(
                        f"{key} {load}: {figures['socket_errors']} socket errors, "
                        f"{figures['non_2xx']} non-2xx"
                    )
    others = [
        r.get("others_cpu", 0)
        for data in res.values()
        if isinstance(data, dict)
        for figures in data.values()
        if isinstance(figures, dict) and "runs" in figures
        for r in figures["runs"]
    ]
    steals = [
        r.get("steal", 0)
        for data in res.values()
        if isinstance(data, dict)
        for figures in data.values()
        if isinstance(figures, dict) and "runs" in figures
        for r in figures["runs"]
    ]
    lines += [
        "How quiet the machine was: during the wrk runs, processes other than the server, wrk "
        f"and the benchmark used {min(others) * 100:.0f}–{max(others) * 100:.0f} % of the "
        f"machine's CPU time, and the hypervisor took {min(steals) * 100:.0f}–"
        f"{max(steals) * 100:.0f} % (steal). "
        "Load average (1 min) before each wrk run: "
        f"{min(res['loads']):.2f}–{max(res['loads']):.2f}. "
        + (
            "Errors under load: " + "; ".join(errors) + "."
            if errors
            else "No socket errors and no non-2xx answers under any load."
        ),
        "",
    ]
    reading = []
    for label, data, workers in (
        ("cais (2 workers)", cais, 2),
        ("cais --workers 4", extra, 4),
        ("the kept contract in the cais image", routes, 2),
    ):
        if not data:
            continue
        for c in CONNECTIONS:
            lop = one_sided_runs(data[f"one_c{c}"], workers)
            if lop:
                runs = data[f"one_c{c}"]["runs"]
                lopsided = ", ".join(f"{r['rps']:,.0f}" for r in lop)
                even = ", ".join(f"{r['rps']:,.0f}" for r in runs if r not in lop) or "none"
                reading.append(
                    f"{label}, {c} connections: in {len(lop)} of {len(runs)} runs fewer than "
                    f"{workers} worker processes did the work (CPU split "
                    f"{', '.join('/'.join(map(str, r['cpu_split'])) for r in lop)}): "
                    f"{lopsided} requests/s, against {even} in the runs where all worked."
                )
    if reading:
        lines += [
            "Uneven runs: the workers of cais's server share one listening socket, and wrk opens "
            "all its connections at once, so one worker may accept most or all of them and keep "
            "them (keep-alive) while the other idles. The baseline's answers close every "
            "connection (`Connection: close`), so its workers share the load request by request.",
            "",
            *[f"- {r}" for r in reading],
            "",
        ]
    lines += [
        "### Targets",
        "",
        "On cais's default server (one worker per CPU) against the baseline; the one-listing "
        "targets hold only if they hold at both 16 and 64 connections.",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for key, text in TARGETS.items():
        ok, measured = targets[key]
        lines.append(f"| {text} | {measured} | {verdict(ok)} |")
    lines += ["", SECTION_END, ""]
    return "\n".join(lines)


def write_doc(path: Path, text: str) -> None:
    write_section(path, text, SECTION_BEGIN, SECTION_END)


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds of each wrk run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="wrk runs of each load on each server (median)"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the results")
    parser.add_argument("--keep-images", action="store_true", help="keep the two images")
    parser.add_argument("--no-workers-4", action="store_true", help="skip cais --workers 4")
    parser.add_argument("--no-host", action="store_true", help="skip cais serve on the host")
    parser.add_argument("--host-workers", type=int, default=2, help="workers of cais serve")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write the section again from the raw figures of an earlier run",
    )
    opts = parser.parse_args()
    if opts.render:
        raw = json.loads(opts.render.read_text(encoding="utf-8"))
        saved = argparse.Namespace(**raw["options"])
        res = raw["results"]
        text = section(raw["machine"], saved, res, res["in_process"], raw["notes"])
        print(text)
        if not opts.no_doc:
            write_doc(opts.doc, text)
            log(f"wrote the results of {opts.render} to {opts.doc}")
        return 0
    for tool in (DOCKER, WRK):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is needed")
    if not DATA.is_file():
        raise SystemExit(f"{DATA} is missing (the dataset is read from ../shared/data)")
    if not image_id(BASE_IMAGE):
        raise SystemExit(f"the base image {BASE_IMAGE} is not in the engine")

    import importlib.metadata

    import joblib

    cais = cais_command()
    info = machine()
    notes: dict = {}
    res: dict = {"loads": []}
    made_images: list[str] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="cais-bench-serve-") as scratch:
            work = Path(scratch)
            texts, labels = read_listings()
            res["listings"] = len(texts)
            log(f"training on {len(texts)} listings")
            model = train(texts, labels)
            home = work / "home"
            reference, notes["save"] = save(model, texts[:2], home)
            log(f"saved {reference}")
            model_file = work / "model.joblib"
            joblib.dump(model, model_file)
            versions = {n: importlib.metadata.version(n) for n in PINNED}
            res["versions"] = versions

            rng = random.Random(20261125)
            sample = rng.sample(texts, SAMPLE_TEXTS)
            batches = [rng.sample(texts, BATCH) for _ in range(BATCHES)]
            expected = [str(p) for p in model.predict(sample[:64])]
            probe = list(zip(sample[:64], expected, strict=True))
            res["probe_size"] = len(probe)

            log("in-process speed")
            inproc = in_process_speed(model, sample, batches, seconds=3)
            log(f"in-process: {inproc}")

            log(f"building {CAIS_IMAGE}")
            res["cais_build"] = build_cais(cais, home, work / "project")
            made_images.append(res["cais_build"]["id"])
            log(f"building {BASELINE_IMAGE}")
            res["baseline_build"] = build_baseline(model_file, work / "baseline", versions)
            made_images.append(res["baseline_build"]["id"])
            res["baseline_build_args"] = res["baseline_build"]["build_args"]
            res["sizes"] = {"cais": image_size(CAIS_IMAGE), "baseline": image_size(BASELINE_IMAGE)}
            cais_pkgs = pip_versions(CAIS_IMAGE)
            base_pkgs = pip_versions(BASELINE_IMAGE)
            for name in PINNED:
                if cais_pkgs.get(name) != versions[name] or base_pkgs.get(name) != versions[name]:
                    raise SystemExit(
                        f"{name}: host {versions[name]}, cais image {cais_pkgs.get(name)}, "
                        f"baseline image {base_pkgs.get(name)}: the images must match the host"
                    )
            res["baseline_extra"] = {
                n: base_pkgs[n] for n in ("flask", "gunicorn") if n in base_pkgs
            }
            res["cais_image_packages"] = cais_pkgs
            res["baseline_image_packages"] = base_pkgs
            sp_cais, sp_base = site_packages(CAIS_IMAGE), site_packages(BASELINE_IMAGE)
            res["site_packages"] = {
                "cais": sp_cais,
                "baseline": sp_base,
                "cais_total": sum(sp_cais.values()),
                "baseline_total": sum(sp_base.values()),
            }
            res["docker_run_true"] = docker_run_seconds(CAIS_IMAGE)
            bodies_file = work / "bodies.json"
            bodies_file.write_text(
                json.dumps({"sample": sample, "batches": batches}), encoding="utf-8"
            )
            bodies_file.chmod(0o644)
            log("in-process speed in the cais image")
            res["in_image"] = in_image_speed(CAIS_IMAGE, bodies_file, seconds=3)
            res["image_python"] = res["in_image"]["python"]
            log(f"in the image: {res['in_image']}")

            one = [json.dumps(cais_body(t), ensure_ascii=False) for t in sample]
            legacy = [json.dumps(route_body(t), ensure_ascii=False) for t in sample]
            many = [json.dumps({"instances": b}, ensure_ascii=False) for b in batches]
            scripts_cais = {
                "one": lua_script(work / "one.lua", "/predict", one),
                "batch": lua_script(work / "batch.lua", "/predict", many),
            }
            scripts_route = {"one": lua_script(work / "route.lua", ROUTE["path"], legacy)}

            serve_cmd = [
                "python",
                "-m",
                "cais.server",
                "/model",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ]
            servers = [
                (
                    Server(
                        "cais",
                        "cais (2 workers)",
                        "/predict",
                        cais_body,
                        cais_answer,
                        container_starter(CAIS_IMAGE, serve_cmd),
                        container_stop,
                        container_pid,
                        batch_path="/predict",
                    ),
                    scripts_cais,
                    True,
                ),
            ]
            if not opts.no_workers_4:
                servers.append(
                    (
                        Server(
                            "cais_w4",
                            "cais --workers 4",
                            "/predict",
                            cais_body,
                            cais_answer,
                            container_starter(CAIS_IMAGE, [*serve_cmd, "--workers", "4"]),
                            container_stop,
                            container_pid,
                            batch_path="/predict",
                        ),
                        scripts_cais,
                        True,
                    )
                )
            servers.append(
                (
                    Server(
                        "baseline",
                        "baseline",
                        ROUTE["path"],
                        route_body,
                        route_answer,
                        container_starter(
                            BASELINE_IMAGE,
                            ["gunicorn", "-w", "4", "-b", "127.0.0.1:{port}", "app:app"],
                        ),
                        container_stop,
                        container_pid,
                    ),
                    scripts_route,
                    True,
                )
            )
            servers.append(
                (
                    Server(
                        "cais_routes",
                        "cais image, /predizer_categoria",
                        ROUTE["path"],
                        route_body,
                        route_answer,
                        container_starter(CAIS_IMAGE, serve_cmd),
                        container_stop,
                        container_pid,
                    ),
                    scripts_route,
                    False,
                )
            )
            if not opts.no_host:
                servers.append(
                    (
                        Server(
                            "host_routes",
                            "cais serve (host), /predizer_categoria",
                            ROUTE["path"],
                            route_body,
                            route_answer,
                            host_starter(cais, home, work / "project", opts.host_workers),
                            host_stop,
                            lambda p: p.pid,
                        ),
                        scripts_route,
                        False,
                    )
                )

            res["probe_wrong"] = {}
            for server, scripts, colds in servers:
                log(f"measuring {server.label}")
                res[server.key] = measure_server(
                    server,
                    scripts,
                    duration=opts.duration,
                    repeat=opts.repeat,
                    probe=probe,
                    cold_starts=colds,
                )
                res["probe_wrong"][server.label] = res[server.key]["probe"]["wrong"]
                for figures in res[server.key].values():
                    if isinstance(figures, dict) and "runs" in figures:
                        res["loads"] += [r["load1_before"] for r in figures["runs"]]
            res["in_process"] = inproc
            text = section(info, opts, res, inproc, notes)
    finally:
        for name in _containers:
            docker("rm", "-f", name, check=False)
        if not opts.keep_images:
            for tag in (CAIS_IMAGE, BASELINE_IMAGE):
                docker("rmi", tag, check=False)
            for made in made_images:
                if made:
                    docker("rmi", made, check=False)
        log(f"done in {time.perf_counter() - started:.0f} s")
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    raw = {
        "machine": info,
        "options": vars(opts) | {"doc": str(opts.doc)},
        "notes": notes,
        "results": res,
    }
    (RESULTS_DIR / f"serve-{stamp}.json").write_text(
        json.dumps(raw, indent=2, default=str), encoding="utf-8"
    )
    if not opts.no_doc:
        write_doc(opts.doc, text)
        log(f"wrote the results to {opts.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
