#!/usr/bin/env python3
"""Images as values: cais's OCI builder against the engine's builders, on the issue's six targets.

Each run measures, in this order, so that drift affects cais and its baseline alike:

  seed   the project of `cais init`: a cold `cais build DIR --builder oci --load` (cais's cache
         empty: CAIS_CACHE is a new folder; the base read as cais reads it, with
         CAIS_BASE_REGISTRY=127.0.0.1:5000) against a cold `DOCKER_BUILDKIT=1 docker build` of
         the course's Dockerfile (BuildKit's cache pruned, --no-cache); then a one-line edit of
         script.py rebuilt by each (`cais build DIR --builder oci`, into the engine); image sizes;
         with --push, the edit pushed after the first version (bytes sent against the code layer).
  model  the products classifier's serving image: a cold `cais build MODEL --builder oci --load`
         against a cold `cais build MODEL --builder docker --no-cache` (BuildKit's cache pruned);
         sizes beside the floor (the base plus a plain `pip install` of the same pins); and the
         cold OCI build again with uv's download cache empty too (UV_CACHE_DIR a new folder), as
         cold as the Docker builder's pip, which downloads every wheel again.
  push   a first version of the model pushed with `cais build … --builder oci --push` to a new
         repository, then a new version: the bytes sent to the registry (counted by a TCP proxy
         in front of it) against the compressed size of the new version's model layer.

The peak memory of each cold OCI build (cais's process and its children, uv) is compared with
the largest layer of the image it built.

    python benchmarks/oci_build.py [--runs N] [--quick] [--parts seed,model,push]
                                   [--doc PATH | --no-doc] [--cais COMMAND]

`--quick` is one run whose table is printed, not written into the doc. A part cais cannot do
yet (its `error:` sentence) is reported as not measured, and the other parts still run. Needs
the Docker Engine, Debian's /usr/bin/docker, `python:3.11-slim` in the engine and in the open
registry at 127.0.0.1:5000 (scripts/test-infra), scikit-learn, and ../shared/data/produtos.csv.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import shlex
import shutil
import socket
import socketserver
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import seed_build  # benchmarks/ is on sys.path when run as a script
import serve
from _common import run, run_sampled, write_section

DOCKER = seed_build.DOCKER
BASE_IMAGE = seed_build.BASE_IMAGE
REGISTRY = "127.0.0.1:5000"  # the open registry of scripts/test-infra, with the base images
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SECTION_BEGIN = "<!-- oci_build: begin -->"
SECTION_END = "<!-- oci_build: end -->"
REPOS = (
    "bench-oci-seed",
    "bench-oci-course",
    "bench-oci-model",
    "bench-oci-model-uv",
    "bench-oci-docker",
    "bench-oci-floor",
)
PARTS = ("seed", "model", "push")
HELD_OUT = (
    40  # listings the first model version is trained without; each run's new version adds some
)

# (key, what, cais's figure, the baseline's, unit, target ratio, how the target reads)
ROWS = [
    ("1", "cold build of the serving image, s", "model_oci_cold", "model_docker_cold", "s", 1 / 3, "≤ 1/3"),
    ("1u", "cold build of the serving image, uv's download cache empty too, s", "model_oci_cold_uv", "model_docker_cold", "s", 1 / 3, "≤ 1/3"),
    ("2", "cold build of the seed project, s", "seed_oci_cold", "seed_bk_cold", "s", 0.5, "≤ 0.5"),
    ("3", "one-line edit of the seed project → image in the engine, s", "seed_oci_edit", "seed_bk_edit", "s", 2.5, "≤ 2.5"),
    ("4", "new model version pushed: bytes sent against its model layer (compressed), MB", "push_bytes", "model_layer_bytes", "MB", 1.05, "≤ 1.05"),
    ("4b", "seed project's edit pushed: bytes sent against its code layer (compressed), MB", "seed_push_bytes", "seed_code_layer_bytes", "MB", 1.05, "≤ 1.05"),
    ("5", "serving image size against the Docker builder's, MB", "model_oci_size", "model_docker_size", "MB", 1.0, "≤ 1"),
    ("5f", "serving image size against the floor (base + `pip install` of the same pins), MB", "model_oci_size", "floor_size", "MB", None, ""),
    ("5s", "seed image size against the course's Dockerfile, MB", "seed_oci_size", "seed_bk_size", "MB", None, ""),
    ("6", "peak RSS of the serving image's cold OCI build against its largest layer, MB", "model_oci_rss", "model_largest_layer", "MB", 1.0, "< 1"),
    ("6s", "peak RSS of the seed project's cold OCI build against its largest layer, MB", "seed_oci_rss", "seed_largest_layer", "MB", 1.0, "< 1"),
]  # fmt: skip


def log(message: str) -> None:
    print(f"[oci_build {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True) -> str:
    return run([DOCKER, *args], check=check, timeout=1800)[1].strip()


def error_sentence(output: str, code: int) -> str:
    """What cais said when it refused (its `error:` line), else the end of its output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("error:")]
    return said[0] if said else f"exit {code}: " + " / ".join(lines[-2:])


_REPORTED = re.compile(r" with \w+ in (\d+(?:\.\d+)?)s")  # cais's "✓ Built … with oci in 0.2s"
_STEP = re.compile(
    r"^✓ \[([\w-]+)\].* (\d+(?:\.\d+)?)s$", re.M
)  # "✓ [base] python:3.11-slim … 7.2s"


class Failed(Exception):
    """A command cais or the baseline could not do; the figure is reported as not measured."""


# ----------------------------------------------------------------------------- counting proxy


class _Pump(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: CountingProxy = self.server  # type: ignore[assignment]
        with socket.create_connection(server.upstream) as upstream:
            ends = [self.request, upstream]
            while True:
                ready, _, _ = select.select(ends, [], [], 300)
                if not ready:
                    return
                for end in ready:
                    data = end.recv(1 << 16)
                    if not data:
                        return
                    # counted before it is passed on, so that no answer outruns its count
                    server.count(len(data), sent=end is self.request)
                    (upstream if end is self.request else self.request).sendall(data)


class CountingProxy(socketserver.ThreadingTCPServer):
    """A TCP proxy in front of the registry that counts what clients send through it (request
    lines, headers and bodies) and what they receive: what a push really costs the network."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Pump)
        self.upstream = upstream
        self.sent = self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def count(self, size: int, *, sent: bool) -> None:
        with self._lock:
            if sent:
                self.sent += size
            else:
                self.received += size

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = 0

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _registry_json(repository: str, what: str, accept: str) -> dict:
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/{what}", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def pushed_layers(repository: str, tag: str) -> list[dict]:
    """The layers of a pushed single-platform image, read from the registry itself, each with
    the history entry that made it (`created_by`), from the image's config."""
    manifest = _registry_json(
        repository,
        f"manifests/{tag}",
        "application/vnd.oci.image.manifest.v1+json, "
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    config = _registry_json(repository, f"blobs/{manifest['config']['digest']}", "*/*")
    made = [h for h in config.get("history", []) if not h.get("empty_layer")]
    layers = manifest["layers"]
    names = [h.get("created_by", "") for h in made]
    if len(names) != len(layers):  # a history that does not describe every layer
        names = [""] * len(layers)
    return [{**layer, "created_by": name} for layer, name in zip(layers, names, strict=True)]


# ----------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, options: argparse.Namespace, cais: list[str], work: Path) -> None:
        self.options, self.cais, self.work = options, cais, work
        self.home = work / "home"
        self.proxy = CountingProxy(("127.0.0.1", int(REGISTRY.rsplit(":", 1)[1])))
        self.stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        self.pins: dict[str, str] = {}
        self.base_layers = len(docker("history", "-q", BASE_IMAGE).splitlines())

    def env(self, cache: Path | None = None, uv_cache: Path | None = None) -> dict[str, str]:
        env = seed_build.base_env()
        env.update(CAIS_HOME=str(self.home), CAIS_BASE_REGISTRY=REGISTRY)
        if cache is not None:
            env["CAIS_CACHE"] = str(cache)
        if uv_cache is not None:  # else uv's own cache (~/.cache/uv) is kept, as installs leave it
            env["UV_CACHE_DIR"] = str(uv_cache)
        return env

    def fresh_cache(self, name: str) -> Path:
        folder = self.work / "caches" / name
        shutil.rmtree(folder, ignore_errors=True)
        return folder

    def cais_build(
        self,
        *args: str,
        cache: Path,
        sampled: bool = False,
        oci: bool = False,
        uv_cache: Path | None = None,
    ) -> tuple[float, dict]:
        """Wall time of `cais build ARGS`, and facts about it: the build time cais reports
        (`reported`), and with `sampled` the memory of its processes. `oci` (implied by
        `--builder oci`) fails the figure when another builder made the image."""
        command = [*self.cais, "build", *args]
        if sampled:
            seconds, output, code, facts = run_sampled(command, env=self.env(cache, uv_cache))
        else:
            env = self.env(cache, uv_cache)
            seconds, output, code = run(command, env=env, check=False, timeout=1800)
            facts = {}
        if code != 0:
            raise Failed(error_sentence(output, code))
        oci = oci or ("--builder" in args and args[args.index("--builder") + 1] == "oci")
        if oci and "with oci" not in output:
            raise Failed(f"cais did not report an OCI build: {output.strip()[-300:]}")
        reported = _REPORTED.search(output)
        facts["reported"] = float(reported.group(1)) if reported else None
        facts["steps"] = {step: float(took) for step, took in _STEP.findall(output)}
        return seconds, facts

    def docker_build(self, tag: str, folder: Path, cold: bool) -> float:
        env = seed_build.base_env()
        env["DOCKER_BUILDKIT"] = "1"
        args = [DOCKER, "build", "-t", tag, *(["--no-cache"] if cold else []), str(folder)]
        seconds, output, code = run(args, env=env, check=False, timeout=1800)
        if code != 0:
            raise Failed(error_sentence(output, code))
        return seconds

    def cold_start(self, repo: str) -> None:
        """What a cold build starts from: none of the candidate's images, BuildKit's cache empty
        (the base image stays in the engine)."""
        remove_repo(repo)
        seed_build.clear_build_caches()

    def layer_sizes(self, tag: str) -> tuple[int, int]:
        """The largest layer of the image (uncompressed, as the engine counts it) and the largest
        of those above the base image."""
        out = docker("history", "--human=false", "--format", "{{.Size}}", tag)
        sizes = [int(size) for size in out.split()]
        own = sizes[: max(len(sizes) - self.base_layers, 0)]
        return max(sizes), max(own, default=0)

    def oci_cold(self, part: str, source: str, tag: str, cache: Path, result: dict) -> None:
        """A cold `cais build SOURCE --builder oci --load`: its time, its memory, the largest
        layers and the size of its image, as `{part}_…` figures."""
        self.cold_start(tag.split(":")[0])
        seconds, memory = self.cais_build(
            source, "--builder", "oci", "--load", "-t", tag, cache=cache, sampled=True
        )
        largest, own = self.layer_sizes(tag)
        result.update(
            {
                f"{part}_oci_cold": seconds,
                f"{part}_oci_memory": memory,
                f"{part}_oci_steps": memory.pop("steps"),
                f"{part}_oci_rss": memory["peak_together"] / 1e6,
                f"{part}_largest_layer": largest / 1e6,
                f"{part}_own_largest_layer": own / 1e6,
                f"{part}_oci_size": image_size(tag) / 1e6,
            }
        )

    # ------------------------------------------------------------------------- seed

    def seed(self, number: int, result: dict) -> None:
        pristine = self.work / "pristine" / "hello"
        if not pristine.exists():
            run([*self.cais, "init", str(pristine)], env=self.env())
        ours = self.work / f"run{number}" / "oci" / "hello"
        course = self.work / f"run{number}" / "course" / "hello"
        shutil.copytree(pristine, ours)
        shutil.copytree(pristine, course)
        (course / "Dockerfile").write_text(seed_build.COURSE_DOCKERFILE, encoding="utf-8")
        cache = self.fresh_cache(f"seed{number}")
        tag, course_tag = f"bench-oci-seed:{number}", f"bench-oci-course:{number}"

        def course_cold() -> None:
            self.cold_start("bench-oci-course")
            result["seed_bk_cold"] = self.docker_build(course_tag, course, cold=True)
            result["seed_bk_size"] = image_size(course_tag) / 1e6

        attempt(
            result,
            ("seed_oci_cold", "seed_oci_rss", "seed_largest_layer", "seed_oci_size"),
            lambda: self.oci_cold("seed", str(ours), tag, cache, result),
        )
        attempt(result, ("seed_bk_cold", "seed_bk_size"), course_cold)
        edit = f"benchmark edit {number}"
        for folder in (ours, course):
            with open(folder / "script.py", "a", encoding="utf-8") as script:
                script.write(f'print("{edit}")\n')
        if "seed_oci_cold" in result:

            def ours_edit() -> float:
                # The ordinary command: `auto` picks the OCI builder for a project it can build.
                seconds, facts = self.cais_build(str(ours), "-t", tag, cache=cache, oci=True)
                result["seed_oci_edit_reported"] = facts["reported"]
                return seconds

            attempt(result, "seed_oci_edit", ours_edit)
            result["seed_oci_runs"] = runs_and_prints(tag, edit)
        if "seed_bk_cold" in result:
            attempt(
                result, "seed_bk_edit", lambda: self.docker_build(course_tag, course, cold=False)
            )
            result["seed_bk_runs"] = runs_and_prints(course_tag, edit)
        failures = result.get("failures", {})
        for cold, edited in (("seed_oci_cold", "seed_oci_edit"), ("seed_bk_cold", "seed_bk_edit")):
            if cold in failures:  # no image to edit
                failures[edited] = failures[cold]
        if "push" in self.options.parts:
            # The first version, then the edit: only the code layer should travel.
            first = self.work / f"run{number}" / "push" / "hello"
            shutil.copytree(pristine, first)
            attempt(
                result,
                ("seed_push_bytes", "seed_code_layer_bytes"),
                lambda: self.push_pair(
                    f"bench-oci/seed-{self.stamp}-{number}", str(first), str(ours), cache,
                    "seed_push_bytes", "seed_code_layer_bytes", "cais: COPY . ", result,
                ),
            )  # fmt: skip

    # ------------------------------------------------------------------------- model

    def models(self) -> tuple[str, list[str]]:
        """The first version of the products classifier, saved in the benchmark's CAIS_HOME."""
        texts, labels = serve.read_listings()
        self.listings = texts, labels
        model = serve.train(texts[:-HELD_OUT], labels[:-HELD_OUT])
        reference, _ = serve.save(model, texts[:2], self.home)
        return reference, texts[:2]

    def new_version(self, number: int) -> str:
        """A new version, trained on more of the listings than the first (a different model
        each run, so a registry never already has its layer)."""
        texts, labels = self.listings
        end = len(texts) - HELD_OUT + number * HELD_OUT // (self.options.runs + 1)
        reference, _ = serve.save(serve.train(texts[:end], labels[:end]), texts[:2], self.home)
        return reference

    def model(self, number: int, reference: str, result: dict) -> None:
        tag, docker_tag = f"bench-oci-model:{number}", f"bench-oci-docker:{number}"
        cache = self.fresh_cache(f"model{number}")

        def docker_cold() -> None:
            self.cold_start("bench-oci-docker")
            seconds, _ = self.cais_build(
                reference, "--builder", "docker", "--no-cache", "-t", docker_tag,
                cache=self.fresh_cache(f"docker{number}"),
            )  # fmt: skip
            result["model_docker_cold"] = seconds
            result["model_docker_size"] = image_size(docker_tag) / 1e6
            if not self.pins:
                base = serve.pip_versions(BASE_IMAGE)
                self.pins = {
                    name: version
                    for name, version in serve.pip_versions(docker_tag).items()
                    if base.get(name) != version
                }

        # Each cold OCI build starts with the other one's image out of the engine too: the
        # layers they share would shorten its load into the engine.
        remove_repo("bench-oci-model-uv")
        attempt(
            result,
            ("model_oci_cold", "model_oci_rss", "model_largest_layer", "model_oci_size"),
            lambda: self.oci_cold("model", reference, tag, cache, result),
        )
        attempt(result, ("model_docker_cold", "model_docker_size"), docker_cold)

        def oci_cold_uv() -> None:
            """As cold as the Docker builder's pip: cais's cache and uv's downloads both empty."""
            remove_repo("bench-oci-model")
            self.cold_start("bench-oci-model-uv")
            seconds, facts = self.cais_build(
                reference, "--builder", "oci", "--load", "-t", f"bench-oci-model-uv:{number}",
                cache=self.fresh_cache(f"model-uv{number}"),
                uv_cache=self.fresh_cache(f"uv{number}"),
            )  # fmt: skip
            result["model_oci_cold_uv"] = seconds
            result["model_oci_uv_steps"] = facts["steps"]

        attempt(result, "model_oci_cold_uv", oci_cold_uv)
        if self.pins:
            attempt(result, "floor_size", self.floor)

    def floor(self) -> float:
        """The base image plus a plain `pip install` of the serving image's pins (built once)."""
        tag = "bench-oci-floor:1"
        if image_size(tag, missing_ok=True) is None:
            folder = self.work / "floor"
            folder.mkdir(exist_ok=True)
            pins = " ".join(f"{name}=={version}" for name, version in sorted(self.pins.items()))
            (folder / "Dockerfile").write_text(
                f"FROM {BASE_IMAGE}\nRUN pip install --no-cache-dir {seed_build.TRUSTED} {pins}\n",
                encoding="utf-8",
            )
            self.docker_build(tag, folder, cold=False)
        return image_size(tag) / 1e6

    def push(self, number: int, first: str, result: dict) -> None:
        cache = self.fresh_cache(f"push{number}")
        repository = f"bench-oci/products-{self.stamp}-{number}"
        attempt(
            result,
            ("push_bytes", "model_layer_bytes"),
            lambda: self.push_pair(
                repository, first, self.new_version(number), cache,
                "push_bytes", "model_layer_bytes", "cais: model ", result,
            ),
        )  # fmt: skip

    def push_pair(
        self,
        repository: str,
        first: str,
        second: str,
        cache: Path,
        sent: str,
        layer: str,
        made_by: str,
        result: dict,
    ) -> float:
        """Push `first`, then `second` to the same repository through the counting proxy; the
        megabytes the second push sent, and (in `layer`) the compressed size of its layers whose
        history entry starts with `made_by` (the model's, or the program's)."""
        target = f"{self.proxy.address}/{repository}"
        self.cais_build(first, "--builder", "oci", "--push", "-t", f"{target}:1", cache=cache)
        self.proxy.reset()
        self.cais_build(second, "--builder", "oci", "--push", "-t", f"{target}:2", cache=cache)
        result[sent + "_received"] = self.proxy.received / 1e6
        sent_mb = self.proxy.sent / 1e6
        before = {item["digest"] for item in pushed_layers(repository, "1")}
        after = pushed_layers(repository, "2")
        own = [item["size"] for item in after if item["created_by"].startswith(made_by)]
        if not own:
            raise Failed(f"no layer of the pushed image says it was made by `{made_by}…`")
        result[layer] = sum(own) / 1e6
        result[sent + "_new_layers"] = [
            [item["size"], item["created_by"]] for item in after if item["digest"] not in before
        ]
        return sent_mb


def attempt(result: dict, keys: str | tuple[str, ...], measure) -> None:
    """Run one measure, which sets `keys` (the first from its return value, unless None); a
    failure is kept as the reason every one of them is missing."""
    keys = (keys,) if isinstance(keys, str) else keys
    try:
        value = measure()
    except Failed as exc:
        for key in keys:
            result.setdefault("failures", {})[key] = str(exc)
        log(f"{keys[0]}: not measured: {exc}")
        return
    if value is not None:
        result[keys[0]] = value
    log(", ".join(f"{key}: {result.get(key)}" for key in keys))


def image_size(reference: str, missing_ok: bool = False) -> int | None:
    out = docker("image", "inspect", "-f", "{{.Size}}", reference, check=not missing_ok)
    return int(out) if out.isdigit() else None


def runs_and_prints(tag: str, edit: str) -> bool:
    _, output, code = run([DOCKER, "run", "--rm", tag], check=False, timeout=120)
    lines = output.splitlines()
    return code == 0 and seed_build.EXPECTED_OUTPUT in lines and edit in lines


def remove_repo(repo: str) -> None:
    for tag in docker("images", "--format", "{{.Repository}}:{{.Tag}}", repo).split():
        docker("rmi", tag, check=False)


# ----------------------------------------------------------------------------- the report


def figures(results: list[dict]) -> list[dict]:
    """Each row's values over the runs (median and range of each side, even when the other
    is missing), its median per-run ratio, and the verdict on its target; or why it is missing."""
    rows = []
    for key, what, ours, theirs, unit, target, target_text in ROWS:
        row: dict = {"key": key, "what": what, "unit": unit, "target": target_text}
        row["ours"] = [r[ours] for r in results if ours in r]
        row["theirs"] = [r[theirs] for r in results if theirs in r]
        row["missing"] = sorted(
            {
                reason
                for r in results
                for name, reason in r.get("failures", {}).items()
                if name in (ours, theirs)
            }
        )
        ratios = [r[ours] / r[theirs] for r in results if ours in r and theirs in r]
        if ratios:
            row["ratio"] = statistics.median(ratios)
            if target is not None:
                bound = (
                    row["ratio"] < target if target_text.startswith("<") else row["ratio"] <= target
                )
                row["verdict"] = "met" if bound else "**not met**"
        rows.append(row)
    return rows


def cell(values: list[float] | None, unit: str) -> str:
    if not values:
        return "–"
    digits = 3 if unit == "MB" and max(values) < 10 else 2 if unit == "s" else 1
    median = f"{statistics.median(values):,.{digits}f}"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def table(rows: list[dict]) -> str:
    lines = [
        "| # | measure | cais, OCI builder | baseline | cais ÷ baseline | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        measured = "ratio" in row
        ratio = f"{row['ratio']:.2f}" if measured else "–"
        lines.append(
            f"| {row['key']} | {row['what']} | {cell(row.get('ours'), row['unit'])} | "
            f"{cell(row.get('theirs'), row['unit'])} | "
            f"{ratio} | {row['target']} | "
            f"{row.get('verdict', '') if measured else 'not measured'} |"
        )
    return "\n".join(lines)


def reading(rows: list[dict], results: list[dict], info: dict) -> str:
    out = []
    for row in rows:
        if "ratio" in row and row["target"]:
            out.append(
                f"- {row['key']}: {row['what'].rsplit(', ', 1)[0]}: ×{row['ratio']:.2f} against a target "
                f"of {row['target']}: {row['verdict']}."
            )
        elif "ratio" not in row:
            why = "; ".join(row["missing"])
            out.append(
                f"- {row['key']}: {row['what'].rsplit(', ', 1)[0]}: not measured; "
                + (f"cais said: {why}" if why else "its part was not run.")
            )
    noisy = [
        f"{row['key']} ({'cais' if side == 'ours' else 'baseline'} ×{max(v) / min(v):.1f})"
        for row in rows
        if row["unit"] == "s"
        for side in ("ours", "theirs")
        if len(v := row.get(side) or []) > 1 and min(v) > 0 and max(v) / min(v) > 2
    ]
    if noisy:
        out.append(
            "- **The machine was busy**: the slowest run took more than twice the fastest in "
            + ", ".join(noisy)
            + "; these ratios are rough (see the load average above)."
        )
    runs_ok = [r[k] for r in results for k in ("seed_oci_runs", "seed_bk_runs") if k in r]
    if runs_ok:
        out.append(
            '- Every seed image ran and printed "Hello, world!" and the edited line.'
            if all(runs_ok)
            else "- **A seed image did not run as expected** (see the raw results)."
        )
    for part in ("seed", "model"):
        memory = [r[f"{part}_oci_memory"] for r in results if f"{part}_oci_memory" in r]
        if memory:
            one = max(m["peak_one_process"] for m in memory) / 1e6
            together = max(m["rss_max"] for m in memory) / 1e6
            count = max(m["processes"] for m in memory)
            own = max(
                r[f"{part}_own_largest_layer"] for r in results if f"{part}_own_largest_layer" in r
            )
            largest = max(memory, key=lambda m: m["peak_together"])["largest_processes"]
            out.append(
                f"- Memory of the {part} build (up to {count} processes; the largest "
                + ", ".join(f"{name} {peak / 1e6:.0f} MB" for name, peak in largest)
                + f"): the largest single "
                f"process peaked at {one:.0f} MB, the largest sum seen in one sample was "
                f"{together:.0f} MB; the largest layer cais wrote itself is {own:.1f} MB "
                f"(the figure above compares with the image's largest layer, the base's included, "
                f"which a cold build also streams into its cache)."
            )
    builds = (
        ("The seed's cold OCI build", "seed_oci_steps"),
        ("The model's cold OCI build", "model_oci_steps"),
        ("The model's cold OCI build with uv's download cache empty too", "model_oci_uv_steps"),
    )
    for build, key in builds:
        steps = [r[key] for r in results if r.get(key)]
        if steps:
            names = list(dict.fromkeys(name for run_steps in steps for name in run_steps))
            spent = ", ".join(
                f"{name} {statistics.median(s.get(name, 0.0) for s in steps):.2f} s"
                for name in names
            )
            out.append(f"- {build}, step by step as cais reports it: {spent}.")
    edits = [
        (r["seed_oci_edit"], r["seed_oci_edit_reported"])
        for r in results
        if r.get("seed_oci_edit_reported") is not None
    ]
    if edits:
        wall = statistics.median(e[0] for e in edits)
        inside = statistics.median(e[1] for e in edits)
        out.append(
            f"- Where the OCI edit rebuild's {wall:.2f} s go: cais reports {inside:.2f} s for the "
            f"build itself (layers, config, the load into the engine); the other "
            f"{wall - inside:.2f} s are starting the command and reading the project. For scale, "
            f"`cais --version` takes {info['version_s']:.2f} s here."
        )
    for part, sent in (("model", "push_bytes"), ("seed", "seed_push_bytes")):
        new = [r[f"{sent}_new_layers"] for r in results if f"{sent}_new_layers" in r]
        if new:
            listed = "; ".join(
                ", ".join(f"{size:,} B ({made or 'no history entry'})" for size, made in run_new)
                for run_new in new
            )
            out.append(
                f"- The {part}'s second push: the layers not in the first version's image "
                f"(compressed size, history entry), each run: {listed}."
            )
    return "\n".join(out)


def section(info: dict, rows: list[dict], results: list[dict], options: argparse.Namespace) -> str:
    loads = ", ".join(f"{r['load1_before']:.2f}" for r in results)
    command = f"python benchmarks/oci_build.py --runs {options.runs}"
    if options.parts != list(PARTS):
        command += f" --parts {','.join(options.parts)}"
    return f"""{SECTION_BEGIN}
## Images as values: the OCI builder against the engine's builders

Measured with `{command}` on {info["date"]}.

Machine: {info["nproc"]} CPUs ({info["cpu"]}), {info["memory_gib"]} GiB of memory, Linux
{info["kernel"]}; Docker Engine {info["docker_engine"]} with its CLI {info["docker_cli"]}
(`/usr/bin/docker`); {info["cais"]} (from {info["cais_source"]}); base image `{BASE_IMAGE}`
(`{(info["base_image_id"] or "")[7:19]}`), also in the registry at `{REGISTRY}`.
Load average (1 min) before each run: {loads}.

Commands (each run in this order; DIR a fresh copy of `cais init`'s project, MODEL the products
classifier of the serve benchmark saved with `cais.save_model`, CACHE a new empty folder for
each cold build; every cais command has `CAIS_BASE_REGISTRY={REGISTRY}`):

```sh
/usr/bin/docker rmi <the candidate's tags>; /usr/bin/docker builder prune -af   # before each cold build
CAIS_CACHE=CACHE cais build DIR --builder oci --load -t bench-oci-seed:N          # 2, 6s
DOCKER_BUILDKIT=1 /usr/bin/docker build -t bench-oci-course:N --no-cache DIR     # 2 (the course's Dockerfile)
echo 'print("benchmark edit N")' >> DIR/script.py
CAIS_CACHE=CACHE cais build DIR --builder oci -t bench-oci-seed:N                 # 3
DOCKER_BUILDKIT=1 /usr/bin/docker build -t bench-oci-course:N DIR                # 3
cais build DIR0 --builder oci --push -t 127.0.0.1:PROXY/bench-oci/seed-STAMP-N:1    # 4b: DIR before the edit
cais build DIR --builder oci --push -t 127.0.0.1:PROXY/bench-oci/seed-STAMP-N:2     # 4b, counted
CAIS_CACHE=CACHE cais build MODEL --builder oci --load -t bench-oci-model:N       # 1, 5, 6
cais build MODEL --builder docker --no-cache -t bench-oci-docker:N               # 1, 1u, 5
CAIS_CACHE=CACHE UV_CACHE_DIR=EMPTY cais build MODEL --builder oci --load -t bench-oci-model-uv:N  # 1u
/usr/bin/docker build -t bench-oci-floor:1 FLOOR   # once: FROM {BASE_IMAGE}; RUN pip install <the pins of bench-oci-docker>
cais build MODEL:1 --builder oci --push -t 127.0.0.1:PROXY/bench-oci/products-STAMP-N:1   # 4
cais build MODEL:NEW --builder oci --push -t 127.0.0.1:PROXY/bench-oci/products-STAMP-N:2 # 4, counted
```

Times are wall-clock times of the whole command, cais run from its bytecode as `pip install`
leaves it (its package is byte-compiled first). Sizes are `docker image inspect -f
'{{{{.Size}}}}'`, base image included. Bytes sent (4) are everything the push sent to the
registry, HTTP requests and headers included, counted by a TCP proxy (PROXY) in front of
`{REGISTRY}`; a new version is the classifier trained on more listings than the first, so its
model layer is new to the registry. Peak RSS (6): every 50 ms, the processes of the build
(cais and its children: uv, strip, the proof) are listed and each one's own peak resident
memory so far is read (the kernel's VmHWM, so a peak between two readings still counts); the
figure is the largest sum of those peaks over the processes alive at one reading (the
engine's memory, which loads the image, is not counted). The largest layer is the image's
largest, uncompressed, as
`docker history` counts it. MB = 10⁶ bytes. Figures are medians over runs (range in
brackets); ratios are the median of each run's ratio.

### Results ({len(results)} run{"s" if len(results) > 1 else ""})

{table(rows)}

### Reading

{reading(rows, results, info)}
{SECTION_END}
"""


# ----------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of every part (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run, printed only")
    parser.add_argument("--parts", default=",".join(PARTS), help="which of seed,model,push")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the results")
    parser.add_argument("--cais", help="the cais command to measure, e.g. 'python -m cais'")
    options = parser.parse_args()
    options.parts = [part.strip() for part in options.parts.split(",") if part.strip()]
    if set(options.parts) - set(PARTS):
        parser.error(f"--parts takes {', '.join(PARTS)}")
    if options.quick:
        options.runs, options.no_doc = 1, True
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    cais = shlex.split(options.cais) if options.cais else seed_build.cais_command()
    if run([*cais, "--version"], check=False)[2] != 0:
        raise SystemExit(f"`{' '.join(cais)} --version` fails; is cais installed?")
    seed_build.compile_cais(cais)
    if {"model", "push"} & set(options.parts) and not serve.DATA.is_file():
        raise SystemExit(f"{serve.DATA} is missing (the dataset is read from ../shared/data)")
    seed_build.wait_for_engine_and_base()
    info = seed_build.machine(cais, None)
    info["version_s"] = statistics.median(run([*cais, "--version"])[0] for _ in range(5))
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cais-oci-bench-") as scratch:
        bench = Bench(options, cais, Path(scratch))
        try:
            first = bench.models()[0] if {"model", "push"} & set(options.parts) else ""
            for number in range(1, options.runs + 1):
                result: dict = {"run": number, "load1_before": serve.loadavg()}
                if "seed" in options.parts:
                    bench.seed(number, result)
                if "model" in options.parts:
                    bench.model(number, first, result)
                if "push" in options.parts:
                    bench.push(number, first, result)
                results.append(result)
        finally:
            bench.proxy.close()
            for repo in REPOS:
                remove_repo(repo)
    rows = figures(results)
    text = section(info, rows, results, options)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS_DIR / f"oci_build-{stamp}.json").write_text(
        json.dumps({"machine": info, "results": results}, indent=2), encoding="utf-8"
    )
    if not options.no_doc:
        write_section(options.doc, text, SECTION_BEGIN, SECTION_END)
        log(f"wrote the results to {options.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
