"""Pip settings a build needs behind a TLS-intercepting proxy or with a private index.

They are gathered from the command line first, then from the environment variables pip and
requests already honour (`PIP_CERT`, `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `PIP_INDEX_URL` …),
and handed to a build as two small files (a pip.conf and a CA bundle) that the builders keep
out of every layer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cais.errors import PlanError

__all__ = [
    "PIP_CA_SECRET",
    "PIP_CONF_SECRET",
    "PipSettings",
    "mounted_pip_secrets",
    "pip_settings",
]

# Names of the pip settings a build receives (BuildKit secret ids, or files in the context).
PIP_CONF_SECRET = "cais-pip.conf"
PIP_CA_SECRET = "cais-ca.pem"

_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)
# `RUN --mount=type=secret,id=…,…`: the options of one mount, in any order.
_MOUNT = re.compile(r"--mount=(\S+)")
# BuildKit refuses secrets over 500 KiB.
_MAX_SECRET = 500 * 1024
CA_ENV_VARS = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@dataclass(frozen=True)
class PipSettings:
    """A pip.conf and CA bundle for the build; empty when nothing needs passing."""

    ca_bundle: bytes = b""
    ca_sources: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ca_bundle or self.index_url or self.extra_index_urls or self.trusted_hosts)

    def pip_conf(self, ca_path: str) -> str:
        lines = ["[global]"]
        if self.ca_bundle:
            lines.append(f"cert = {ca_path}")
        if self.index_url:
            lines.append(f"index-url = {self.index_url}")
        if self.extra_index_urls:
            lines.append("extra-index-url = " + " ".join(self.extra_index_urls))
        if self.trusted_hosts:
            lines.append("trusted-host = " + " ".join(self.trusted_hosts))
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        parts = []
        if self.ca_sources:
            parts.append("CA certificates from " + ", ".join(f"`{s}`" for s in self.ca_sources))
        if self.index_url:
            parts.append("a package index")
        if self.extra_index_urls:
            parts.append("extra package indexes")
        if self.trusted_hosts:
            parts.append("trusted hosts")
        return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def pip_settings(
    ca_certs: list[Path] | None = None,
    index_url: str | None = None,
    *,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> PipSettings:
    """Gather the pip settings of a build from the options, then from the environment."""
    env = os.environ if environ is None else environ
    sources: list[str] = []
    if ca_certs:
        for cert in ca_certs:
            if not Path(cert).is_file():
                raise PlanError(
                    f"The CA certificate `{cert}` does not exist",
                    hint="give the PEM file of your proxy's or index's certificate authority",
                )
            sources.append(str(cert))
    else:
        for var in CA_ENV_VARS:
            value = env.get(var)
            if value and Path(value).is_file():
                sources.append(value)
                break
    bundle = _bundle(sources) if sources else b""
    index = index_url or env.get("PIP_INDEX_URL") or None
    extra = tuple((env.get("PIP_EXTRA_INDEX_URL") or "").split())
    trusted = tuple((env.get("PIP_TRUSTED_HOST") or "").split())
    return PipSettings(bundle, tuple(sources), index, extra, trusted)


def mounted_pip_secrets(dockerfile: str) -> set[str]:
    """Which of the pip settings' secrets (`cais-pip.conf`, `cais-ca.pem`) a Dockerfile's
    `RUN --mount=type=secret` options mount."""
    found = set()
    for mount in _MOUNT.findall(dockerfile):
        options = dict(part.partition("=")[::2] for part in mount.strip("\\").split(","))
        secret = options.get("id") if options.get("type") == "secret" else None
        if secret in (PIP_CONF_SECRET, PIP_CA_SECRET):
            found.add(secret)
    return found


def _bundle(sources: list[str]) -> bytes:
    """The given certificates plus certifi's public ones, each once, so both the proxy and
    ordinary HTTPS sites are trusted."""
    seen: dict[bytes, None] = {}
    for source in sources:
        blocks = _PEM_BLOCK.findall(Path(source).read_bytes())
        if not blocks:
            raise PlanError(
                f"`{source}` holds no PEM certificate",
                hint="convert it with `openssl x509 -inform der -in FILE -out FILE.pem`",
            )
        seen.update(dict.fromkeys(b.replace(b"\r\n", b"\n") for b in blocks))
    import certifi  # only when a bundle is made: it costs start-up time

    size = sum(len(block) + 1 for block in seen)
    if size > _MAX_SECRET - 4096:
        raise PlanError(
            f"The CA certificates given ({size // 1024} KiB) are more than a build secret may "
            "hold (BuildKit's limit is 500 KiB)",
            hint="pass only the certificates of your proxy or index with --ca-cert",
        )
    for block in _PEM_BLOCK.findall(Path(certifi.where()).read_bytes()):
        if block not in seen and size + len(block) < _MAX_SECRET - 4096:
            seen[block] = None
            size += len(block) + 1
    return b"\n".join(seen) + b"\n"
