"""A target platform (`linux/arm64/v8`), parsed once, and the host's own."""

from __future__ import annotations

import platform as _stdlib_platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cais.errors import PlanError

__all__ = ["Platform"]

# `uname -m` names and Go's GOARCH names (what OCI uses) for the same machines.
_MACHINES = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}
# An unstated variant means this one (containerd's normalisation).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_EXAMPLE = "`linux/amd64` or `linux/arm64`"


@dataclass(frozen=True)
class Platform:
    """An OS, an architecture and an optional variant; `arm64` and `arm64/v8` are equal."""

    os: str
    architecture: str
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.variant is None and self.architecture in _DEFAULT_VARIANT:
            object.__setattr__(self, "variant", _DEFAULT_VARIANT[self.architecture])

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise PlanError(
                f"The platform `{text}` is not of the form OS/ARCH[/VARIANT]",
                hint=f"write it like {_EXAMPLE}",
            )
        os_name, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else None
        if arch in _MACHINES and _MACHINES[arch][0] != arch:
            arch = _MACHINES[arch][0]  # `linux/x86_64` and `linux/aarch64` mean the Go names
        return cls(os_name, arch, variant)

    @classmethod
    def host(cls) -> Platform:
        machine = _stdlib_platform.machine().lower()
        arch, variant = _MACHINES.get(machine, (machine, None))
        return cls(_stdlib_platform.system().lower() or "linux", arch, variant)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Platform:
        """The platform of an index entry or an image config (`os`, `architecture`, `variant`)."""
        return cls(str(data["os"]), str(data["architecture"]), data.get("variant") or None)

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def matches(self, entry: Mapping[str, Any]) -> bool:
        """Whether an index entry's `platform` object (or an image config) is this platform."""
        try:
            return Platform.from_json(entry) == self
        except (KeyError, TypeError):
            return False

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)
