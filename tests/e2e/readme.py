"""The README's journeys as a reader types them: its command blocks, read from README.md
itself (so the two cannot drift apart) and run line by line in bash from a fresh folder.

Only what cannot be the same here is replaced, each replacement listed by its journey and
checked to still be in the block: Docker Hub's `USER` becomes the local basic-auth registry,
port 8080 a free port, image names unique ones. Commands that serve (`cais serve`, `cais run
-p`) start in the background, as in a second terminal; the next line runs once the server
is ready, and a server is stopped (Ctrl-C) before the next one starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import wait_until_ready

README = Path(__file__).resolve().parents[2] / "README.md"
# Journeys, by the README heading whose first command block they run.
SEED = "# cais"
WEB = "### A web app"
MODEL = "## Models: save, serve, build, run"


def readme_block(heading: str, readme: Path = README) -> list[str]:
    """The commands of the first ``` block under `heading` in `readme`."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n") if not text.startswith(f"{heading}\n") else 0
    block = re.search(r"^```\n(.*?)^```$", text[start:], re.M | re.S)
    assert block, f"no command block under `{heading}` in `{readme}`"
    return [line for line in block.group(1).splitlines() if line.strip()]


def replaced(lines: list[str], replacements: list[tuple[str, str]]) -> list[str]:
    """`lines` with each (old, new) applied; an `old` no longer in the block fails the test,
    so a README edit cannot leave a replacement silently unused."""
    text = "\n".join(lines)
    for old, new in replacements:
        assert old in text, f"`{old}` is no longer in the README's journey"
        text = text.replace(old, new)
    return text.splitlines()


class Shell:
    """Runs README lines in bash, in one folder, with `cais` and `python` on PATH as in the
    virtual environment cais is installed in."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        bin_folder = folder.parent / "bin"
        bin_folder.mkdir()
        for name, command in (("cais", f"{sys.executable} -m cais"), ("python", sys.executable)):
            script = bin_folder / name
            script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
            script.chmod(0o755)
        self.folder = folder
        self.env = {
            **os.environ,
            **env,
            "PATH": f"{bin_folder}:{os.environ['PATH']}",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        self.server: subprocess.Popen | None = None

    def run(self, line: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert not check or done.returncode == 0, f"`{line}` failed:\n{done.stdout}\n{done.stderr}"
        return done

    def run_all(self, lines: list[str], port: int) -> str:
        """Run README lines, serving ones in the background; returns all they printed."""
        said = ""
        for line in lines:
            command = line.split("#")[0].split()
            serves = command[:2] == ["cais", "serve"] or (
                command[:2] == ["cais", "run"] and "-p" in command and "-d" not in command
            )
            if serves:
                self.start(line, port)
            else:
                done = self.run(line)
                said += f"{done.stdout}\n{done.stderr}\n"
        return said

    def start(self, line: str, port: int) -> None:
        """A line that serves: in the background, until it answers on `port`."""
        self.stop()
        self.server = subprocess.Popen(
            ["bash", "-c", f"exec {line}"],
            cwd=self.folder,
            env=self.env,
            # As from a terminal, so that stop()'s Ctrl-C reaches it: a suite started in the
            # background (`pytest … &`) passes SIGINT on ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        wait_until_ready(f"http://127.0.0.1:{port}", tries=600)
        assert self.server.poll() is None, f"`{line}` exited"

    def stop(self) -> None:
        if self.server is not None:
            self.server.send_signal(signal.SIGINT)  # Ctrl-C
            self.server.wait(timeout=60)
            self.server = None
