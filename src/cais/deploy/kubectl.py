"""Apply generated manifests with `kubectl`, where a cluster is configured.

Whether one is, `kubectl config current-context` says without reaching it: asked before any
file is written, so a machine without a cluster gets one sentence and nothing else.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cais.errors import DeployError

__all__ = ["apply", "preflight"]

TIMEOUT = 120  # seconds for one kubectl call: an unreachable API server is given up on
# How kubectl says (in Go's words, wrapped in its own) that the API server is not there
_UNREACHABLE = re.compile(r"dial tcp ([^ ]+): (.+?)(?:;|$)|Unable to connect to the server: (.+?)$")


def preflight() -> str:
    """The current context's name; a DeployError when kubectl or a cluster is missing."""
    kubectl = _kubectl()
    done = _run([kubectl, "config", "current-context"])
    if done.returncode != 0 or not done.stdout.strip():
        raise DeployError(
            "No Kubernetes cluster is configured for `kubectl` (it has no current context)",
            hint="configure one (`kubectl config use-context NAME`, or KUBECONFIG); without "
            "`--apply`, cais writes the files alone",
        )
    return done.stdout.strip()


def apply(path: Path, context: str) -> list[str]:
    """`kubectl apply -f PATH`; what kubectl says it did, a line per object."""
    command = [_kubectl(), "--context", context, "--request-timeout", "30s"]
    done = _run([*command, "apply", "-f", str(path)])
    if done.returncode == 0:
        return done.stdout.splitlines()
    said = " ".join((done.stderr or done.stdout).split())
    hint = (
        f"`kubectl --context {context} cluster-info` tells whether the cluster answers; the "
        "files are written and can be applied later"
    )
    unreachable = _UNREACHABLE.search(said)
    if unreachable:
        address, reason, other = unreachable.groups()
        where = f" at {address} ({reason})" if address else f" ({other.rstrip('.')})"
        raise DeployError(f"The cluster `{context}` does not answer{where}", hint=hint)
    # kubectl's own sentence, without its advice to turn validation off
    said = said.removeprefix("error: ").split("; if you choose to ignore")[0].rstrip(".")
    raise DeployError(
        f"`kubectl apply` of `{path}` failed on the cluster `{context}`: {said or 'no output'}",
        hint=hint,
    )


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise DeployError(
            "`kubectl` is not installed, and it applies the files to a cluster",
            hint="install it (`sudo apt-get install kubernetes-client`); without `--apply`, "
            "cais writes the files alone",
        )
    return path


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DeployError(
            f"`kubectl` did not answer in {TIMEOUT} s",
            hint="check the cluster with `kubectl cluster-info`",
        ) from None
