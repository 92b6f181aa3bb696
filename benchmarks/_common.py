"""What the benchmark scripts share: running a timed command (and measuring the memory of its
processes), finding the shared dataset, and writing their section of docs/benchmarks.md while
leaving the others as they are."""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path

DOC_HEADER = """# Benchmarks

Measurements of cais against the way a Docker course does the same job, on one machine, with
the baseline measured in the same run. How to run them: [benchmarks/README.md](../benchmarks/README.md).

"""


def write_section(path: Path, text: str, begin: str, end: str) -> None:
    """Replace the text between the `begin` and `end` markers (or append it)."""
    old = path.read_text(encoding="utf-8") if path.exists() else DOC_HEADER
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def run(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 1800,
) -> tuple[float, str, int]:
    """Run a command; its wall time in seconds, its output (stdout then stderr), exit code."""
    started = time.perf_counter()
    done = subprocess.run(
        args,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    if check and done.returncode != 0:
        raise SystemExit(
            f"command failed ({done.returncode}): {shlex.join(args)}\n{output[-3000:]}"
        )
    return seconds, output, done.returncode


def products_csv() -> Path:
    """The products dataset, `shared/data/produtos.csv` beside the repository (or beside a
    folder above it); never a copy inside the repository."""
    here = Path(__file__).resolve().parent.parent
    for folder in here.parents:
        candidate = folder / "shared" / "data" / "produtos.csv"
        if candidate.is_file():
            return candidate
    return here.parent / "shared" / "data" / "produtos.csv"


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def memory_of(pids: list[int]) -> tuple[int, int]:
    """Sum of RSS and of PSS of these processes, in bytes."""
    rss = pss = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            rss += int(match.group(1)) * 1024 if match else 0
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
            pss += int(match.group(1)) * 1024 if match else 0
        except OSError:
            continue
    return rss, pss


class MemorySampler(threading.Thread):
    """Samples the memory of a process and its descendants every `every` seconds: the sum of
    their RSS and PSS; each process's own peak RSS as the kernel keeps it (VmHWM, which starts
    again at exec, unlike getrusage's ru_maxrss, which keeps the size of the forking parent);
    and `peak_together`, the largest sum, at one sample, of the peaks so far of the processes
    alive then, which a peak between two samples cannot escape."""

    def __init__(self, root: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.samples: list[tuple[int, int, int]] = []
        self.together = 0
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            pids = process_tree(self.root)
            rss, pss = memory_of(pids)
            self.samples.append((rss, pss, len(pids)))
            for pid in pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                match = re.search(r"VmHWM:\s+(\d+) kB", status)
                name = re.search(r"Name:\s+(\S+)", status)
                self.names[pid] = name.group(1) if name else "?"
                if match:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), int(match.group(1)) * 1024)
            self.together = max(self.together, sum(self.peaks.get(pid, 0) for pid in pids))
            self.halt.wait(self.every)

    def result(self) -> dict:
        self.halt.set()
        self.join(5)
        if not self.samples:
            return {}
        return {
            "rss_max": max(s[0] for s in self.samples),
            "pss_max": max(s[1] for s in self.samples),
            "processes": max(s[2] for s in self.samples),
            "samples": len(self.samples),
            "peak_together": self.together,
            "peak_one_process": max(self.peaks.values(), default=0),
            "largest_processes": [
                [self.names[pid], peak]
                for pid, peak in sorted(self.peaks.items(), key=lambda item: -item[1])[:4]
            ],
        }


def run_sampled(
    args: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float = 1800
) -> tuple[float, str, int, dict]:
    """`run`, and the memory of the command's processes (`MemorySampler`, every 50 ms)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        sampler = MemorySampler(process.pid, every=0.05)
        sampler.start()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        seconds = time.perf_counter() - started
        memory = sampler.result()
        output.seek(0)
        text = output.read().decode(errors="replace")
    return seconds, text, process.returncode, memory
