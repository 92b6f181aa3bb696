"""Running uv: its binary, the environment it runs with, and its errors as one sentence.

uv pins packages (bundle/pins.py) and installs them for an image's target (builders/
packages.py). Both give it the same package index and proxy CA, through its environment and
for the run only: the index URL may hold credentials, which no command line should show.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cais.errors import StackError

if TYPE_CHECKING:
    from cais.builders.pip_settings import PipSettings

__all__ = ["PYPI_SIMPLE", "Index", "environment", "reason", "uv_binary"]

PYPI_SIMPLE = "https://pypi.org/simple"
# uv's index variables: Index has read them; uv gets the one answer, not two that conflict.
_UV_INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX", "UV_EXTRA_INDEX_URL")
_CAUSES = ("error:", "cause:", "Caused by:", "╰─▶", "×")  # how uv opens an error and its causes


@dataclass(frozen=True)
class Index:
    """The package index uv resolves from and release dates are read from, and the CA
    certificates that reach it (a TLS-intercepting proxy's)."""

    url: str = PYPI_SIMPLE
    extra_urls: tuple[str, ...] = ()
    ca_bundle: bytes = b""

    @classmethod
    def from_settings(cls, pip: PipSettings | None = None) -> Index:
        """From a build's pip settings (its --ca-cert and --index-url), or those the
        environment holds (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, the CA variables) as builds
        read them; then uv's own UV_DEFAULT_INDEX or UV_INDEX_URL (and UV_INDEX,
        UV_EXTRA_INDEX_URL); then PyPI."""
        from cais.builders.pip_settings import pip_settings

        pip = pip or pip_settings()
        env = os.environ
        url = pip.index_url or env.get("UV_DEFAULT_INDEX") or env.get("UV_INDEX_URL")
        extra = [*pip.extra_index_urls]
        for name in ("UV_INDEX", "UV_EXTRA_INDEX_URL"):
            extra += [u for u in env.get(name, "").split() if u not in extra]
        return cls((url or PYPI_SIMPLE).rstrip("/"), tuple(extra), pip.ca_bundle)

    @property
    def host(self) -> str:
        import httpx

        return httpx.URL(self.url).host or self.url


def uv_binary() -> str:
    """The uv executable of cais's environment (its PyPI wheel carries it)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError) as exc:
        raise StackError(
            "uv, which cais pins and installs packages with, is not installed",
            hint="install it into cais's environment: `pip install uv`",
        ) from exc


@contextmanager
def environment(index: Index) -> Iterator[dict[str, str]]:
    """The environment uv runs with: the CA bundle in a file of its own for the run."""
    env = {k: v for k, v in os.environ.items() if k not in _UV_INDEX_VARIABLES}
    # The index goes by the environment, not the command line, where any process could read
    # credentials in its URL.
    env.update(UV_DEFAULT_INDEX=index.url, UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    if index.extra_urls:
        env["UV_INDEX"] = " ".join(index.extra_urls)
    if not index.ca_bundle:
        yield env
        return
    with tempfile.NamedTemporaryFile(prefix="cais-ca-", suffix=".pem") as bundle:
        bundle.write(index.ca_bundle)
        bundle.flush()
        yield {**env, "SSL_CERT_FILE": bundle.name}


def reason(stderr: str) -> str:
    """uv's error and its causes as one line, without uv's own headings and hints: causes
    joined by colons, the lines of one cause by spaces."""
    parts: list[str] = []
    skipping = False  # inside a hint or warning, which may run over several lines
    for line in stderr.splitlines():
        text = line.strip()
        if not text:
            continue
        cause = text.startswith(_CAUSES)
        if text.startswith(("hint:", "warning:")) or (skipping and not cause):
            skipping = True
            continue
        skipping = False
        for prefix in _CAUSES:
            text = text.removeprefix(prefix).strip()
        if text.startswith("No solution found when resolving dependencies"):
            continue
        if cause or not parts:
            parts.append(text.rstrip(":"))
        else:
            parts[-1] += " " + text
    said = ": ".join(parts).rstrip(".") or "uv failed without saying why"
    return said[0].lower() + said[1:] if said.startswith("Because") else said
