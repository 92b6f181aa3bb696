#!/usr/bin/env python3
"""A rolling update under load: the products classifier on a single-node swarm, 2 replicas
behind nginx (`cais deploy swarm`), rolled from version 1 to version 2 while a steady load
goes through the proxy.

Each run deploys version 1 to a new stack, sends the load (tests/load.py: 4 threads, a POST of
one real listing every 50 ms each) for a while before the roll, runs `cais deploy swarm
MODEL:2 --up` under it, keeps it a few seconds more, and removes the stack. Figures, each run:
requests failed (anything but a 200, target 0), the p99 latency during the roll against the
p99 in the seconds before it (same run), and the time from `cais deploy swarm` to every
replica on the new version (the command returns then: it waits for Swarm's update to end),
with the last answer version 1 gave.

    python benchmarks/rolling_update.py [--runs N] [--quick] [--doc PATH | --no-doc]
                                        [--cais COMMAND]

Needs the Docker Engine in swarm mode or able to become one, Debian's /usr/bin/docker, the
nginx stand-in and `python:3.11-slim` of scripts/test-infra, the open registry at
127.0.0.1:5000, scikit-learn, and ../shared/data/produtos.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import seed_build  # benchmarks/ is on sys.path when run as a script
import serve
from _common import run, write_section

sys.path.insert(0, str(serve.REPO_ROOT))  # tests/load.py: the load generator the test uses
from tests.load import Load, percentile  # noqa: E402

REGISTRY = "127.0.0.1:5000"
SECTION_BEGIN = "<!-- rolling_update: begin -->"
SECTION_END = "<!-- rolling_update: end -->"
CA_FOLDER = Path("/usr/local/share/ca-certificates")
REPLICAS = 2
BEFORE_S = 15  # steady load before the roll: the p99 it is compared with
AFTER_S = 5
HELD_OUT = 200  # listings version 1 is not trained on, so version 2 is another model


def log(message: str) -> None:
    print(f"[rolling_update] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, cais: list[str], work: Path) -> None:
        self.cais = cais
        self.home = work / "home"
        self.work = work
        self.stamp = time.strftime("%H%M%S", time.gmtime())
        self.env = {**os.environ, "CAIS_HOME": str(self.home)}
        self.images: list[str] = []

    def command(self, *args: str, check: bool = True) -> tuple[float, str, int]:
        return run([*self.cais, *args], env=self.env, check=check, timeout=900)

    def versions(self) -> tuple[str, list[str]]:
        """Versions 1 and 2 of the classifier, built and pushed; one listing to post."""
        import cais as cais_api

        texts, labels = serve.read_listings()
        name = f"bench-rolling-{self.stamp}"
        certs = [a for c in sorted(CA_FOLDER.glob("*.crt")) for a in ("--ca-cert", str(c))]
        for end in (len(texts) - HELD_OUT, len(texts)):
            model = serve.train(texts[:end], labels[:end])
            reference = cais_api.save_model(model, name, input_example=texts[:1], home=self.home)
            log(f"building {reference}")
            self.command("build", reference, *certs)
            pushed = f"{REGISTRY}/{reference}"
            run([serve.DOCKER, "tag", reference, pushed])
            run([serve.DOCKER, "push", pushed])
            self.images += [reference, pushed]
        return name, texts[-1:]

    def roll(self, number: int, name: str, body: list[str]) -> dict:
        stack, port = f"bench-rolling-{self.stamp}-{number}", free_port()
        file = self.work / f"run{number}" / "stack.yaml"
        args = ("-o", str(file), "--name", stack, "--port", str(port))
        args += ("--replicas", str(REPLICAS), "--up")
        self.command("deploy", "swarm", f"{name}:1", *args)
        url = f"http://127.0.0.1:{port}/predict"
        try:
            with Load(url, {"instances": body}, limit_s=900) as load:
                time.sleep(BEFORE_S)
                started = time.monotonic()
                seconds, output, code = self.command("deploy", "swarm", f"{name}:2", *args)
                ended = time.monotonic()
                time.sleep(AFTER_S)
        finally:
            self.command("deploy", "swarm", "--down", "--name", stack, check=False)
        before = [a.seconds for a in load.between(started - BEFORE_S, started)]
        during = [a.seconds for a in load.between(started, ended)]
        last_v1 = max((a.started for a in load.answers if a.version == "1"), default=started)
        return {
            "run": number,
            "exit_code": code,
            "output": output[-500:] if code else "",
            "requests": len(load.answers),
            "failed": len(load.failed),
            "failures": [(a.status, a.error) for a in load.failed[:10]],
            "p99_before_ms": percentile(before, 0.99) * 1000,
            "p99_during_ms": percentile(during, 0.99) * 1000,
            "p50_before_ms": percentile(before, 0.5) * 1000,
            "p50_during_ms": percentile(during, 0.5) * 1000,
            "roll_s": seconds,
            "last_v1_answer_s": last_v1 - started,
            "v2_after": {a.version for a in load.between(ended, float("inf"))} == {"2"},
        }

    def clean(self) -> None:
        for image in self.images:
            run([serve.DOCKER, "rmi", "-f", image], check=False)


def median(results: list[dict], key: str) -> str:
    values = [r[key] for r in results]
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def latency_reading(ratios: list[float]) -> str:
    ratio = statistics.median(ratios)
    if ratio > 1.2:
        return (
            "a new replica starts (loads the model, runs its health checks) on the same two "
            "CPUs that serve the load"
        )
    if ratio < 0.8:
        return (
            "lower, so what moves a p99 on this shared machine is noise larger than the roll "
            "itself (other processes, the load generator on the same CPUs)"
        )
    return "about the same: the roll adds no tail latency the load sees"


def section(info: dict, results: list[dict], runs: int) -> str:
    rows = "\n".join(
        f"| {r['run']} | {r['requests']} | {r['failed']} | {r['p99_before_ms']:.0f} | "
        f"{r['p99_during_ms']:.0f} | {r['p99_during_ms'] / r['p99_before_ms']:.2f} | "
        f"{r['roll_s']:.1f} | {r['last_v1_answer_s']:.1f} | {'yes' if r['v2_after'] else 'no'} |"
        for r in results
    )
    failed = sum(r["failed"] for r in results)
    ratios = [r["p99_during_ms"] / r["p99_before_ms"] for r in results]
    return f"""{SECTION_BEGIN}
## A rolling update under load (`cais deploy swarm`)

Measured with `python benchmarks/rolling_update.py --runs {runs}` on {info["date"]}.

Machine: {info["nproc"]} CPUs ({info["cpu"]}), {info["memory_gib"]} GiB of memory, Linux
{info["kernel"]} (no IPVS); Docker Engine {info["docker_engine"]} in swarm mode (one node), its
CLI {info["docker_cli"]}; {info["cais"]}.

Each run, on the products classifier (version 1 trained on all listings but {HELD_OUT},
version 2 on all; both built by `cais build` and pushed to `{REGISTRY}`):

```sh
cais deploy swarm MODEL:1 --name STACK --port PORT --replicas {REPLICAS} --up
# load: tests/load.py, 4 threads, each a POST /predict of one listing every 50 ms, through nginx
sleep {BEFORE_S}                                                  # "before"
cais deploy swarm MODEL:2 --name STACK --port PORT --replicas {REPLICAS} --up   # "during", timed
sleep {AFTER_S}
cais deploy swarm --down --name STACK
```

Latencies are each request's own, from the load generator on the same machine (so the load
and the roll share its 2 CPUs with the replicas). "Roll" is the wall time of the second
command: it returns once every replica runs version 2 and nginx answers; "last v1" is when
the last answer from version 1 was sent, from the command's start.

### Results ({len(results)} run{"s" if len(results) > 1 else ""})

| run | requests | failed | p99 before (ms) | p99 during (ms) | during ÷ before | roll (s) | last v1 (s) | only v2 after |
|---:|---:|---:|---:|---:|---:|---:|---:|:---:|
{rows}

Medians (range): p99 before {median(results, "p99_before_ms")} ms, during
{median(results, "p99_during_ms")} ms; roll {median(results, "roll_s")} s.

### Reading

- {failed} request{"s" * (failed != 1)} failed over {sum(r["requests"] for r in results)}
  (target 0): a replica leaves nginx's view (the DNS) before it is stopped, refuses new
  connections while it drains (nginx then tries the other), and finishes what it has.
- The p99 during the roll is {statistics.median(ratios):.1f}× the p99 before it (median of
  the runs; {", ".join(f"{r:.2f}" for r in ratios)} each): {latency_reading(ratios)}.
- The roll takes about {statistics.median(r["roll_s"] for r in results):.0f} s for
  {REPLICAS} replicas, the last answer from version 1 about
  {statistics.median(r["last_v1_answer_s"] for r in results):.0f} s in: per replica a start
  and a first health check (every 5 s) before the old one is stopped, then the 15 s
  `monitor` window in which Swarm still watches the new replicas before it calls the update
  `completed` (and cais returns).
{SECTION_END}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="rolls (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run, printed only")
    parser.add_argument("--doc", type=Path, default=serve.DEFAULT_DOC, help="file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the results")
    parser.add_argument("--cais", help="the cais command to measure, e.g. 'python -m cais'")
    options = parser.parse_args()
    if options.quick:
        options.runs, options.no_doc = 1, True
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    cais = shlex.split(options.cais) if options.cais else seed_build.cais_command()
    if not serve.DATA.is_file():
        raise SystemExit(f"{serve.DATA} is missing (the dataset is read from ../shared/data)")
    seed_build.wait_for_engine_and_base()
    info = seed_build.machine(cais, None)
    results = []
    with tempfile.TemporaryDirectory(prefix="cais-rolling-bench-") as scratch:
        bench = Bench(cais, Path(scratch))
        try:
            name, body = bench.versions()
            for number in range(1, options.runs + 1):
                log(f"run {number}")
                results.append(bench.roll(number, name, body))
                log(json.dumps(results[-1]))
        finally:
            bench.clean()
    text = section(info, results, options.runs)
    print(text)
    serve.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (serve.RESULTS_DIR / f"rolling_update-{stamp}.json").write_text(
        json.dumps({"machine": info, "results": results}, indent=2, default=list),
        encoding="utf-8",
    )
    if not options.no_doc:
        write_section(options.doc, text, SECTION_BEGIN, SECTION_END)
        log(f"wrote the results to {options.doc}")
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
