#!/usr/bin/env python3
"""Seed journey benchmark: `cais build` against the course's hand-written Dockerfile.

On the example project of `cais init`, four ways to build are measured in the same run, each
run going through all four in turn (A, B, C, D, then again) so that drift affects them alike:

  A  cais build DIR -t TAG --builder buildkit  the engine's BuildKit (docker CLI)
  B  cais build DIR -t TAG --builder classic    the engine's classic builder (Engine API)
  C  DOCKER_BUILDKIT=1 docker build -t TAG DIR  the course's Dockerfile, BuildKit
  D  docker build -t TAG DIR                    the course's Dockerfile, classic builder (the
                                                default of Debian's docker 20.10 CLI)

For each: the cold build (images of the candidate removed, build caches cleared, --no-cache),
a rebuild with nothing changed, a rebuild after appending a line to script.py, the image size,
and a check that the image runs and prints "Hello, world!". The results are printed as
markdown and written to a section of docs/benchmarks.md.

    python benchmarks/seed_build.py [--runs N] [--doc PATH | --no-doc] [--keep-images]
                                    [--cais COMMAND [--cais-source TEXT]]

Needs the Docker Engine, Debian's /usr/bin/docker and the base image python:3.11-slim in the
engine. Only the standard library; cais runs as a user runs it, through its console script
(or the command given with --cais, e.g. `python -m cais` with PYTHONPATH pointing at a copy of
the sources, to measure a fixed version).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import run, write_section  # benchmarks/ is on sys.path when run as a script

DOCKER = "/usr/bin/docker"
BASE_IMAGE = "python:3.11-slim"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SECTION_BEGIN = "<!-- seed_build: begin -->"
SECTION_END = "<!-- seed_build: end -->"
EXPECTED_OUTPUT = "Hello, world!"
TRUSTED = "--trusted-host pypi.org --trusted-host files.pythonhosted.org"

COURSE_DOCKERFILE = f"""\
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install {TRUSTED} -r requirements.txt
COPY . .
CMD ["python", "script.py"]
"""

MEASURES = [
    ("cold", "cold build, s"),
    ("nochange", "rebuild, nothing changed, s"),
    ("edit", "rebuild after a one-line edit of script.py, s"),
    ("size", "image size, MB"),
]


# ----------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[seed_build {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True) -> str:
    return run([DOCKER, *args], check=check)[1].strip()


def image_id(reference: str) -> str | None:
    _, out, code = run([DOCKER, "image", "inspect", "-f", "{{.Id}}", reference], check=False)
    return out.strip() if code == 0 else None


def cais_command() -> list[str]:
    """The console script installed with the Python running the benchmark (not a version
    manager's shim, whose own start-up is no part of cais), else the one on PATH."""
    beside = Path(sys.executable).parent / "cais"
    if os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("cais")
    return [found] if found else [sys.executable, "-m", "cais"]


def cais_python(cais: list[str]) -> list[str]:
    """The Python that runs the cais command: its interpreter, or its console script's."""
    if cais[1:3] == ["-m", "cais"]:
        return cais[:1]
    first = Path(cais[0]).read_bytes()[:200].decode(errors="replace").splitlines()[0]
    return first[2:].strip().split() if first.startswith("#!") else [sys.executable]


def compile_cais(cais: list[str]) -> None:
    """Byte-compile the measured cais's package, as `pip install` does: measured from a source
    folder, every command would otherwise compile what it imports (with
    PYTHONDONTWRITEBYTECODE set, every time)."""
    run(
        [
            *cais_python(cais),
            "-c",
            "import cais, compileall, os; compileall.compile_dir(os.path.dirname(cais.__file__),"
            " quiet=1)",
        ],
        env=base_env(),
    )


def cais_source(cais: list[str]) -> str:
    """Where the cais that is measured comes from: the git commit of its source when it is
    imported from a git checkout, else the folder of its package."""
    python = cais_python(cais)
    _, out, code = run(
        [*python, "-c", "import cais, os; print(os.path.dirname(cais.__file__))"],
        check=False,
    )
    if code != 0:
        return "unknown"
    package = out.strip().splitlines()[-1]
    _, commit, code = run(["git", "-C", package, "log", "-1", "--format=%h"], check=False)
    if code != 0:
        return f"`{package}`"
    _, dirty, _ = run(["git", "-C", package, "status", "--porcelain", "--", "."], check=False)
    return f"git commit {commit.strip()}" + (" with local changes" if dirty.strip() else "")


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DOCKER_BUILDKIT", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cais runs from its bytecode, as installed
    env["NO_COLOR"] = "1"
    env.setdefault("COLUMNS", "200")
    return env


# ----------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    key: str
    label: str  # short name in tables
    repo: str  # image repository the benchmark tags
    kind: str  # "cais" or "course"
    builder: str  # "buildkit" or "classic"
    image_ids: set[str] = field(default_factory=set)  # every image this candidate made
    chains: set[str] = field(default_factory=set)  # and their parent images
    results: list[dict] = field(default_factory=list)  # one dict per run

    def tag(self, run_no: int) -> str:
        return f"{self.repo}:{run_no}"

    def build_command(
        self, cais: list[str], directory: Path, tag: str, cold: bool
    ) -> tuple[list[str], dict[str, str]]:
        env = base_env()
        if self.kind == "cais":
            args = [*cais, "build", str(directory), "-t", tag]
            args += ["--builder", self.builder]
        else:
            args = [DOCKER, "build", "-t", tag]
            if self.builder == "buildkit":
                env["DOCKER_BUILDKIT"] = "1"
            args.append(str(directory))
        if cold:
            args.insert(-1 if self.kind == "course" else len(args), "--no-cache")
        return args, env

    def display_command(self, cold: bool) -> str:
        """The command as a user types it (placeholders for folders and tags)."""
        if self.kind == "cais":
            text = "cais build DIR -t " + f"{self.repo}:N"
            text += f" --builder {self.builder}"
            return text + (" --no-cache" if cold else "")
        prefix = "DOCKER_BUILDKIT=1 " if self.builder == "buildkit" else ""
        return (
            f"{prefix}/usr/bin/docker build -t {self.repo}:N"
            + (" --no-cache" if cold else "")
            + " DIR"
        )


CANDIDATES = [
    Candidate("A", "cais build (BuildKit)", "bench-cais", "cais", "buildkit"),
    Candidate("B", "cais build --builder classic", "bench-cais-classic", "cais", "classic"),
    Candidate(
        "C",
        "course Dockerfile, DOCKER_BUILDKIT=1 docker build",
        "bench-course-buildkit",
        "course",
        "buildkit",
    ),
    Candidate(
        "D",
        "course Dockerfile, docker build (classic)",
        "bench-course-classic",
        "course",
        "classic",
    ),
]
PAIRS = [("A", "C"), ("B", "D")]  # same builder: cais ÷ course
DEFAULTS = ("A", "D")  # cais on the engine ÷ what a user of the course types


# ----------------------------------------------------------------------------- cleanup


def dangling() -> set[str]:
    out = docker("images", "-q", "--no-trunc", "--filter", "dangling=true")
    return set(out.split())


def _created(image: str) -> tuple[float, str] | None:
    """An image's creation time (seconds since the epoch) and its parent's ID."""
    _, out, code = run(
        [DOCKER, "image", "inspect", "-f", "{{.Created}} {{.Parent}}", image], check=False
    )
    if code != 0:
        return None
    created, _, parent = out.strip().partition(" ")
    try:
        when = _dt.datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return when.replace(tzinfo=_dt.timezone.utc).timestamp(), parent.strip()


def made_in_window(
    image: str, started: float, ended: float, base_id: str, known: set[str]
) -> list[str] | None:
    """The chain of `image` down to the base image when each of its images was created during
    [started, ended] or is already known to be the benchmark's; None when one was not (then
    someone else's build made it, or made part of it)."""
    chain, current = [], image
    while current and current != base_id and current not in known:
        found = _created(current)
        if found is None or len(chain) > 100:
            return None
        when, parent = found
        if not started - 1 <= when <= ended + 1:
            return None
        chain.append(current)
        current = parent
    return chain if current else None


def adopt_new_dangling(
    candidate: Candidate, before: set[str], started: float, ended: float, base_id: str
) -> None:
    """Untagged images left by the candidate's build: the image a rebuild untagged, and with the
    classic builder the last image of each earlier stage. They are removed with the candidate's
    images. An image counts as the candidate's only when every layer above the base image was
    made during this build or by an earlier build of the candidate, so that images of builds
    running beside the benchmark are left alone."""
    known = candidate.image_ids | candidate.chains
    for image in dangling() - before:
        if image in candidate.image_ids:
            continue
        chain = made_in_window(image, started, ended, base_id, known)
        if chain:
            candidate.image_ids.add(image)
            candidate.chains.update(chain)


def remove_images(candidate: Candidate) -> None:
    """Remove the candidate's tags and every image it made; never an image someone else tagged."""
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", candidate.repo).split()
    for tag in tags:
        docker("rmi", tag, check=False)
    for image in sorted(candidate.image_ids):
        _, out, code = run(
            [DOCKER, "image", "inspect", "-f", "{{json .RepoTags}}", image], check=False
        )
        if code != 0:
            continue
        foreign = [t for t in json.loads(out or "[]") or [] if not t.startswith("bench-")]
        if not foreign:
            docker("rmi", image, check=False)
    candidate.image_ids = {i for i in candidate.image_ids if image_id(i) is not None}
    candidate.chains = {i for i in candidate.chains if image_id(i) is not None}


def clear_build_caches() -> None:
    """BuildKit's cache. The classic builder's cache is its intermediate images, which went with
    the candidate's images; `--no-cache` makes sure no one else's image is reused either."""
    docker("builder", "prune", "-af")


# ----------------------------------------------------------------------------- one run


class BaseImageChanged(Exception):
    """The base image was replaced or removed (by whoever maintains it) during the benchmark."""


_CAIS_SECONDS = re.compile(r" with (?:buildkit|classic) in (\d+(?:\.\d+)?)s")


def build(
    candidate: Candidate,
    cais: list[str],
    directory: Path,
    tag: str,
    cold: bool,
    base_id: str,
    timings: dict[str, float] | None = None,
    phase: str = "",
) -> float:
    args, env = candidate.build_command(cais, directory, tag, cold)
    before = dangling()
    started = time.time()
    seconds, output, code = run(args, env=env, check=False)
    if image_id(BASE_IMAGE) != base_id:
        raise BaseImageChanged(f"{BASE_IMAGE} changed or went away during a build")
    if code != 0:
        raise SystemExit(
            f"{candidate.label}: build failed ({code}): {' '.join(args)}\n{output[-4000:]}"
        )
    if candidate.kind == "cais":
        if f"with {candidate.builder}" not in output:
            raise SystemExit(
                f"{candidate.label}: cais did not report building with {candidate.builder}:\n{output[-2000:]}"
            )
        reported = _CAIS_SECONDS.search(output)
        if reported and timings is not None:
            timings[phase] = float(reported.group(1))
    built = image_id(tag)
    if built is None:
        raise SystemExit(f"{candidate.label}: no image {tag} after the build")
    candidate.image_ids.add(built)
    chain = made_in_window(
        built, started, time.time(), base_id, candidate.image_ids | candidate.chains
    )
    candidate.chains.update(chain or ())
    adopt_new_dangling(candidate, before, started, time.time(), base_id)
    return seconds


def check_runs(tag: str, edit_line: str) -> tuple[bool, str]:
    _, output, code = run([DOCKER, "run", "--rm", tag], check=False, timeout=120)
    lines = output.splitlines()
    ok = code == 0 and EXPECTED_OUTPUT in lines and edit_line in lines
    return ok, output.strip()


def one_run(
    run_no: int, candidate: Candidate, pristine: Path, work: Path, cais: list[str], base_id: str
) -> dict:
    directory = work / f"run{run_no}-{candidate.key}" / "hello"
    shutil.copytree(pristine, directory)
    if candidate.kind == "course":
        (directory / "Dockerfile").write_text(COURSE_DOCKERFILE, encoding="utf-8")
    tag = candidate.tag(run_no)

    remove_images(candidate)
    clear_build_caches()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    result: dict = {"run": run_no, "candidate": candidate.key, "load1_before": float(load_before)}
    reported: dict[str, float] = {}
    result["cais_reported"] = reported  # the build's own time as cais reports it (cais only)
    result["cold"] = build(candidate, cais, directory, tag, True, base_id, reported, "cold")
    result["size_bytes"] = int(docker("image", "inspect", "-f", "{{.Size}}", tag))
    result["size"] = result["size_bytes"] / 1e6
    result["nochange"] = build(
        candidate, cais, directory, tag, False, base_id, reported, "nochange"
    )
    edit_line = f"benchmark edit {run_no}{candidate.key}"
    with open(directory / "script.py", "a", encoding="utf-8") as script:
        script.write(f'print("{edit_line}")\n')
    result["edit"] = build(candidate, cais, directory, tag, False, base_id, reported, "edit")
    result["size_after_edit_bytes"] = int(docker("image", "inspect", "-f", "{{.Size}}", tag))
    ok, output = check_runs(tag, edit_line)
    result["runs_ok"] = ok
    result["run_output"] = output
    log(
        f"run {run_no} {candidate.key} ({candidate.label}): cold {result['cold']:.2f}s, "
        f"no change {result['nochange']:.2f}s, edit {result['edit']:.2f}s, "
        f"{result['size']:.2f} MB, runs {'ok' if ok else 'FAILED: ' + output[-200:]}"
    )
    return result


# ----------------------------------------------------------------------------- report


def machine(cais: list[str], source: str | None) -> dict:
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {
        "date": run(["date", "-u"])[1].strip(),
        "nproc": run(["nproc"])[1].strip(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "kernel": platform.release(),
        "docker_engine": docker("version", "-f", "{{.Server.Version}}"),
        "docker_cli": docker("version", "-f", "{{.Client.Version}}"),
        "cais": run([*cais, "--version"])[1].strip(),
        "cais_source": source or cais_source(cais),
        "base_image_id": image_id(BASE_IMAGE),
        "python": platform.python_version(),
    }


def fmt(measure: str, value: float) -> str:
    return f"{value:.3f}" if measure == "size" else f"{value:.2f}"


def summary(candidates: dict[str, Candidate]) -> dict:
    out: dict = {}
    for key, cand in candidates.items():
        out[key] = {
            m: {
                "median": statistics.median(r[m] for r in cand.results),
                "min": min(r[m] for r in cand.results),
            }
            for m, _ in MEASURES
        }
    for key, cand in candidates.items():
        outside = [
            r[m] - r["cais_reported"][m]
            for r in cand.results
            for m in ("cold", "nochange", "edit")
            if m in r.get("cais_reported", {})
        ]
        out[key]["outside"] = statistics.median(outside) if outside else None
    for a, b in [*PAIRS, DEFAULTS, ("A", "B")]:
        ratios, deltas = {}, {}
        for m, _ in MEASURES:
            pairs = list(zip(candidates[a].results, candidates[b].results, strict=True))
            ratios[m] = statistics.median(ra[m] / rb[m] for ra, rb in pairs)
            deltas[m] = statistics.median(ra[m] - rb[m] for ra, rb in pairs)
        out[f"{a}/{b}"] = ratios
        out[f"{a}-{b}"] = deltas
    return out


def ratio(measure: str, value: float) -> str:
    return f"{value:.5f}" if measure == "size" else f"{value:.2f}"


def summary_table(candidates: dict[str, Candidate], stats: dict) -> str:
    head = ["measure (median, min in brackets)"]
    for a, b in PAIRS:
        head += [f"{a}: {candidates[a].label}", f"{b}: {candidates[b].label}", f"{a} ÷ {b}"]
    a, b = DEFAULTS
    head.append(f"{a} ÷ {b}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, name in MEASURES:
        row = [name]
        for a, b in PAIRS:
            for key in (a, b):
                s = stats[key][m]
                row.append(f"{fmt(m, s['median'])} ({fmt(m, s['min'])})")
            row.append(ratio(m, stats[f"{a}/{b}"][m]))
        row.append(ratio(m, stats["/".join(DEFAULTS)][m]))
        lines.append("| " + " | ".join(row) + " |")
    row = ["cais outside its build step, s (wall time − the build time cais reports; all builds)"]
    for a, b in PAIRS:
        for key in (a, b):
            value = stats[key].get("outside")
            row.append("–" if value is None else f"{value:.2f}")
        row.append("")
    row.append("")
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_run_table(candidates: dict[str, Candidate]) -> str:
    keys = [k for pair in PAIRS for k in pair]
    head = ["run", "measure", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    runs = len(candidates["A"].results)
    for i in range(runs):
        for m, name in MEASURES:
            row = [str(i + 1), name]
            row += [fmt(m, candidates[k].results[i][m]) for k in keys]
            lines.append("| " + " | ".join(row) + " |")
        row = [str(i + 1), f'`docker run` prints "{EXPECTED_OUTPUT}" and the edit']
        row += ["yes" if candidates[k].results[i]["runs_ok"] else "**no**" for k in keys]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def step_text(created_by: str) -> str:
    """A history entry as the Dockerfile line it came from."""
    text = re.sub(r"\s+", " ", created_by).strip()
    text = re.sub(r"^/bin/sh -c #\(nop\) ", "", text)
    text = re.sub(r"^(RUN )?(\|\d+ )?/bin/sh -c ", "RUN ", text)
    return text.removesuffix(" # buildkit")


def layers(tag: str, base_layers: int) -> list[tuple[int, str]]:
    out = docker(
        "history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", tag
    )
    rows = [line.split("\t", 1) for line in out.splitlines()]
    rows = rows[: max(len(rows) - base_layers, 0)]  # newest first; drop the base image's
    result = []
    for size, created_by in reversed(rows):
        text = step_text(created_by)
        text = text.replace("|", "\\|")
        result.append((int(size), text if len(text) <= 110 else text[:107] + "…"))
    return result


def layer_tables(candidates: dict[str, Candidate]) -> str:
    base_layers = len(docker("history", "-q", BASE_IMAGE).splitlines())
    parts = []
    for key in ("A", "C", "B", "D"):
        cand = candidates[key]
        tag = cand.tag(len(cand.results))
        rows = layers(tag, base_layers)
        total = sum(size for size, _ in rows)
        parts.append(f"{key} ({cand.label}), {total / 1e3:.1f} kB over the base image:\n")
        parts.append("| bytes | step |\n|---:|---|")
        parts += [f"| {size} | `{text}` |" for size, text in rows if size > 0]
        parts.append("")
    return "\n".join(parts)


def reading(candidates: dict[str, Candidate], stats: dict, startup: dict[str, float]) -> str:
    def compare(x: str, y: str, m: str, what: str) -> str:
        ratio, delta = stats[f"{x}/{y}"][m], stats[f"{x}-{y}"][m]
        if ratio <= 0.95:
            verdict = "faster"
        elif ratio < 1.05:
            verdict = "on par"
        else:
            verdict = "**slower**"
        return f"{what} {verdict} (×{ratio:.2f}, {delta:+.2f} s)"

    def line(x: str, y: str) -> str:
        return "; ".join(
            [
                compare(x, y, "cold", "cold build"),
                compare(x, y, "nochange", "rebuild with nothing changed"),
                compare(x, y, "edit", "rebuild after the edit"),
            ]
        )

    a, d = DEFAULTS
    names = {
        "cold": "cold builds",
        "nochange": "rebuilds with nothing changed",
        "edit": "rebuilds after an edit",
    }
    slow = [names[m] for m in names if stats[f"{a}/{d}"][m] >= 1.05]
    fine = [names[m] for m in names if stats[f"{a}/{d}"][m] < 1.05]
    size_delta = (stats[a]["size"]["median"] - stats[d]["size"]["median"]) * 1000
    short = "- **In short:** against the course's Dockerfile and `docker build`, `cais build` is "
    short += "; ".join(
        part
        for part in (
            f"no slower on {', '.join(fine)}" if fine else "",
            f"**slower on {', '.join(slow)}**" if slow else "",
        )
        if part
    )
    short += (
        f", and its image is **{size_delta:.1f} kB larger**."
        if size_delta > 0
        else ", and its image is no larger."
    )
    out = [
        short,
        f"- **cais against the course's way** ({a} ÷ {d}: `cais build --builder buildkit` against "
        f"`docker build` of the course's Dockerfile, Debian's default builder): {line(a, d)}.",
    ]
    for x, y in PAIRS:
        out.append(f"- **Same builder, {candidates[x].builder}** ({x} ÷ {y}): {line(x, y)}.")
    slower = [
        stats[f"{x}-{y}"][m]
        for x, y in [*PAIRS, DEFAULTS]
        for m in ("cold", "nochange", "edit")
        if stats[f"{x}/{y}"][m] >= 1.05
    ]
    outside = [stats[k]["outside"] for k in ("A", "B") if stats[k].get("outside") is not None]
    if slower and outside:
        out.append(
            f"- Where cais is slower (by {min(slower):.2f}–{max(slower):.2f} s), about "
            f"{min(outside):.2f}–{max(outside):.2f} s of every cais build is spent outside the build "
            f"step itself (the wall time less the build time cais reports). For scale: "
            f"`cais --version` takes {startup['version']:.2f} s and `cais dockerfile DIR` (start, "
            f"read the project, write the Dockerfile, no engine) {startup['dockerfile']:.2f} s. The "
            f"builds take seconds, so this fixed cost shows as a large ratio, largest on a rebuild "
            f"with nothing to do."
        )
    for x, y in [("A", "C"), ("B", "D")]:
        delta = stats[x]["size"]["median"] - stats[y]["size"]["median"]
        word = "larger" if delta > 0 else "smaller" if delta < 0 else "the same size"
        out.append(
            f"- **Image size** ({x} against {y}): {stats[x]['size']['median']:.3f} MB against "
            f"{stats[y]['size']['median']:.3f} MB: "
            + (f"{abs(delta) * 1000:.1f} kB {word}" if delta else word)
            + (
                f" ({abs(delta) / stats[y]['size']['median'] * 100:.3f}%; the layers below show where)."
                if delta > 0
                else "."
            )
        )
    if stats["A"]["size"]["median"] > stats["C"]["size"]["median"]:
        out.append(
            f"- Where the bytes come from: cais's image runs as a non-root user, the course's as "
            f"root. The user is two lines appended to `/etc/passwd` and `/etc/group`, but a layer "
            f"holds whole files, so both ({startup['user_files_bytes']:,} bytes together in the "
            f"base image) are copied into cais's dependency layer; cais in turn keeps "
            f"`.dockerignore` ({startup['dockerignore_bytes']:,} bytes) out of the image, which "
            f"the course's `COPY . .` copies."
        )
    rb = stats["A/B"]
    if rb["cold"] < 1 and rb["edit"] < 1:
        verdict = "BuildKit is faster on cold builds and edits, so `--builder docker` takes it"
    elif rb["cold"] > 1 and rb["edit"] > 1:
        verdict = "the classic builder is faster on cold builds and edits, so `--builder docker` should take it"
    else:
        verdict = "neither builder is faster on both cold builds and edits"
    out.append(
        f"- **cais's two builders** (A ÷ B, BuildKit ÷ classic): cold ×{rb['cold']:.2f} "
        f"({stats['A-B']['cold']:+.2f} s), no change ×{rb['nochange']:.2f} "
        f"({stats['A-B']['nochange']:+.2f} s), edit ×{rb['edit']:.2f} ({stats['A-B']['edit']:+.2f} s): {verdict}."
    )
    bad = [
        f"{c.key} run {r['run']}"
        for c in candidates.values()
        for r in c.results
        if not r["runs_ok"]
    ]
    out.append(
        '- Every image ran and printed "Hello, world!" and the edited line.'
        if not bad
        else f"- **Images that did not run as expected: {', '.join(bad)}.**"
    )
    return "\n".join(out)


def section(
    info: dict,
    candidates: dict[str, Candidate],
    stats: dict,
    runs: int,
    loads: list[float],
    startup: dict[str, float],
) -> str:
    commands = []
    width = max(len(c.display_command(True)) for c in candidates.values()) + 1
    for cand in candidates.values():
        commands.append(f"# {cand.key}: {cand.label}")
        commands.append(f"{cand.display_command(True):{width}s} # cold")
        commands.append(f"{cand.display_command(False):{width}s} # no change; then after the edit")
    prep = [
        "cais init $TMP/hello                       # the example project; DIR is a fresh copy of it",
        "/usr/bin/docker rmi <the candidate's images>  # before each cold build",
        "/usr/bin/docker builder prune -af",
        "echo 'print(\"benchmark edit …\")' >> DIR/script.py   # the one-line edit",
        "/usr/bin/docker image inspect -f '{{.Size}}' TAG",
        "/usr/bin/docker run --rm TAG                  # must print Hello, world! and the edit",
    ]
    return f"""{SECTION_BEGIN}
## Seed journey: `cais build` against the course's Dockerfile

Measured with `python benchmarks/seed_build.py --runs {runs}` on {info["date"]}.

Machine: {info["nproc"]} CPUs ({info["cpu"]}), {info["memory_gib"]} GiB of memory, Linux
{info["kernel"]}; Docker Engine {info["docker_engine"]} with its CLI {info["docker_cli"]}
(`/usr/bin/docker`); {info["cais"]} (from {info["cais_source"]}); base image `{BASE_IMAGE}` (`{(info["base_image_id"] or "")[7:19]}`).
Load average (1 min) before the cold builds: {min(loads):.2f}–{max(loads):.2f}.

The project is the one `cais init` writes: `script.py`, `requirements.txt` with one small
package (`humanize`), `cais.yaml`, `.dockerignore`. The baseline is the Dockerfile a Docker
course writes for it, in a copy of the same folder:

```dockerfile
{COURSE_DOCKERFILE.rstrip()}
```

pip reaches PyPI here only through a TLS-intercepting proxy. cais passes the proxy's CA
certificate to pip by itself (it reads `SSL_CERT_FILE`) and keeps it out of the image: with
BuildKit as a secret mount of the `RUN pip install`, with the classic builder in a throw-away
build stage. A hand-written Dockerfile has no such certificate, so the course's Dockerfile uses
`pip install {TRUSTED}`, which is what a course user behind a proxy does.

Commands (DIR is a fresh copy of the project for each candidate and run; each run goes through
A, B, C and D in turn, so that drift affects them alike):

```sh
{chr(10).join(prep)}
{chr(10).join(commands)}
```

Cold builds start with the candidate's images removed and BuildKit's cache cleared
(`docker builder prune -af`), and pass `--no-cache` so that no layer another image on the
engine happens to share is reused; the base image stays. Times are wall-clock times of the
whole command (for cais, that includes starting the CLI: `cais --version` takes
{startup["version"]:.2f} s here, `cais dockerfile DIR` {startup["dockerfile"]:.2f} s). Sizes are `docker image inspect -f '{{{{.Size}}}}'` in MB (10⁶ bytes),
base image included. Ratios are the median over runs of the ratio within each run.

### Results ({runs} runs)

{summary_table(candidates, stats)}

### Reading

{reading(candidates, stats, startup)}

### Each run

{per_run_table(candidates)}

### Layers over the base image (last run)

{layer_tables(candidates)}
{SECTION_END}
"""


def write_doc(path: Path, text: str) -> None:
    write_section(path, text, SECTION_BEGIN, SECTION_END)


# ----------------------------------------------------------------------------- main


def wait_for_engine_and_base() -> None:
    """Wait while the base image is missing or being (re)built."""
    while True:
        busy = run(["pgrep", "-f", "scripts/test-infra|/usr/sbin/debootstrap"], check=False)[2] == 0
        if image_id(BASE_IMAGE) and not busy:
            return
        log(f"waiting for {BASE_IMAGE} (test-infra or debootstrap running: {busy})")
        time.sleep(20)


def measure(options: argparse.Namespace, cais: list[str]):
    """All runs of all candidates, then the report; images removed unless --keep-images."""
    info = machine(cais, options.cais_source)
    base_id = info["base_image_id"]
    starts = [run([*cais, "--version"])[0] for _ in range(5)]
    candidates = {c.key: Candidate(c.key, c.label, c.repo, c.kind, c.builder) for c in CANDIDATES}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cais-bench-") as scratch:
        work = Path(scratch)
        pristine = work / "pristine" / "hello"
        run([*cais, "init", str(pristine)])
        renders = [run([*cais, "dockerfile", str(pristine)])[0] for _ in range(5)]
        try:
            for run_no in range(1, options.runs + 1):
                for cand in candidates.values():
                    if image_id(BASE_IMAGE) != base_id:
                        raise BaseImageChanged(f"{BASE_IMAGE} changed during the benchmark")
                    result = one_run(run_no, cand, pristine, work, cais, base_id)
                    loads.append(result["load1_before"])
                    cand.results.append(result)
            stats = summary(candidates)
            sizes = docker(
                "run",
                "--rm",
                "--entrypoint",
                "stat",
                BASE_IMAGE,
                "-c",
                "%s",
                "/etc/passwd",
                "/etc/group",
            )
            startup = {
                "version": statistics.median(starts),
                "dockerfile": statistics.median(renders),
                # What the non-root user costs a layer, and what cais leaves out that the course copies.
                "user_files_bytes": sum(int(n) for n in sizes.split()),
                "dockerignore_bytes": (pristine / ".dockerignore").stat().st_size,
            }
            text = section(info, candidates, stats, options.runs, loads, startup)
        finally:
            if not options.keep_images:
                for cand in candidates.values():
                    remove_images(cand)
    return info, candidates, stats, text, {"version": starts, "dockerfile": renders}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of all four candidates (default 3)"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="markdown file to update")
    parser.add_argument("--no-doc", action="store_true", help="only print the results")
    parser.add_argument("--keep-images", action="store_true", help="keep the last run's images")
    parser.add_argument(
        "--cais",
        help="the cais command to measure, e.g. 'python -m cais' "
        "(default: the console script installed with this Python)",
    )
    parser.add_argument(
        "--cais-source",
        help="where that cais comes from, for the report "
        "(default: the git commit of its package, when there is one)",
    )
    options = parser.parse_args()
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    if not os.access(DOCKER, os.X_OK):
        raise SystemExit(f"{DOCKER} (Debian's docker CLI, matching the engine) is needed")

    cais = shlex.split(options.cais) if options.cais else cais_command()
    if run([*cais, "--version"], check=False)[2] != 0:
        raise SystemExit(f"`{' '.join(cais)} --version` fails; is cais installed?")
    for _attempt in range(1, 6):
        wait_for_engine_and_base()
        try:
            info, candidates, stats, text, starts = measure(options, cais)
            break
        except BaseImageChanged as exc:
            log(f"{exc}: starting again")
    else:
        raise SystemExit(f"{BASE_IMAGE} kept changing; run the benchmark when it is stable")
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    raw = {
        "machine": info,
        "cais_startup_seconds": starts,
        "summary": stats,
        "results": {k: c.results for k, c in candidates.items()},
    }
    (RESULTS_DIR / f"seed_build-{stamp}.json").write_text(
        json.dumps(raw, indent=2), encoding="utf-8"
    )
    if not options.no_doc:
        write_doc(options.doc, text)
        log(f"wrote the results to {options.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
