"""An image as a value: a config, ordered layers and a manifest, each named by its digest.

Functions that change an image (`append_layers`, `with_config`, `with_created`) return a
new one. Config and manifest are serialised with sorted keys and no spaces, so the same
content always has the same digest. The image id the Docker Engine shows is the config's
digest.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cais.image.blobs import sha256_digest
from cais.image.layer import Descriptor, Layer, compress_layers
from cais.image.media import MediaType
from cais.image.platform import Platform

__all__ = [
    "Image",
    "append_layers",
    "canonical_json",
    "empty",
    "timestamp",
    "with_config",
    "with_created",
]


# Engines write nanoseconds (`2024-05-01T12:00:00.123456789Z`), which Python 3.10's
# `fromisoformat` cannot read: the fraction is dropped.
_RFC3339 = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(?P<zone>Z|[+-]\d\d:\d\d)"
)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def timestamp(seconds: int) -> str:
    """RFC 3339 in UTC, to the second, as image configs write times."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Image:
    """A config (raw bytes, as they are hashed), its layers, and the manifest's media type."""

    config_json: bytes
    layers: tuple[Layer, ...]
    media_type: MediaType = MediaType.OCI_MANIFEST

    def __post_init__(self) -> None:
        if not self.media_type.is_manifest:
            raise ValueError(f"{self.media_type} is not an image manifest media type")
        listed = self.config.get("rootfs", {}).get("diff_ids", [])
        if listed != [layer.diff_id for layer in self.layers]:
            raise ValueError("the config's rootfs.diff_ids do not list the image's layers")

    def __repr__(self) -> str:
        return f"Image(id={self.id!r}, platform='{self.platform}', layers={len(self.layers)})"

    @property
    def config(self) -> dict[str, Any]:
        """A fresh copy of the config: changing it changes nothing here."""
        return json.loads(self.config_json)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config_json)

    @property
    def id(self) -> str:
        """The image id in the Docker Engine: the config's digest."""
        return self.config_digest

    @property
    def platform(self) -> Platform:
        return Platform.from_json(self.config)

    @property
    def created(self) -> int | None:
        """The config's `created` time in whole seconds; None when absent or unreadable."""
        found = _RFC3339.fullmatch(str(self.config.get("created") or ""))
        if not found:
            return None
        when = datetime.fromisoformat(found["time"] + found["zone"].replace("Z", "+00:00"))
        return int(when.timestamp())

    def config_descriptor(self) -> Descriptor:
        return Descriptor(self.media_type.config, self.config_digest, len(self.config_json))

    @functools.cached_property
    def manifest_json(self) -> bytes:
        """The manifest; layers not yet compressed are compressed first, in parallel."""
        layers = compress_layers(self.layers)
        return canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": self.media_type.value,
                "config": self.config_descriptor().to_json(),
                "layers": [layer.descriptor(self.media_type).to_json() for layer in layers],
            }
        )

    @property
    def digest(self) -> str:
        """The manifest's digest: what a registry reference `NAME@sha256:…` names."""
        return sha256_digest(self.manifest_json)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.manifest_json))


def empty(
    platform: Platform, *, media_type: MediaType = MediaType.OCI_MANIFEST, created: int = 0
) -> Image:
    """An image with no layers (`FROM scratch`) for a platform."""
    config = {
        **platform.to_json(),
        "config": {},
        "created": timestamp(created),
        "history": [],
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return Image(canonical_json(config), (), media_type)


def append_layers(
    image: Image, layers: Sequence[Layer], *, created_by: Iterable[str] | None = None
) -> Image:
    """The image with `layers` on top, each with a history entry (`created_by` says what).

    History entries carry the image's `created` time: set it (`with_created`) first.
    """
    config = image.config
    when = config.get("created")
    comments = list(created_by) if created_by is not None else ["cais"] * len(layers)
    if len(comments) != len(layers):
        raise ValueError("one created_by per layer")
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    config["rootfs"]["diff_ids"] = [
        *config["rootfs"]["diff_ids"],
        *(layer.diff_id for layer in layers),
    ]
    history = config.setdefault("history", [])
    for comment in comments:
        history.append(
            {"created": when, "created_by": comment} if when else {"created_by": comment}
        )
    return Image(canonical_json(config), (*image.layers, *layers), image.media_type)


def with_config(
    image: Image,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    workdir: str | None = None,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    exposed_ports: Iterable[str] | None = None,
    labels: Mapping[str, str] | None = None,
    healthcheck: Mapping[str, Any] | None = None,
) -> Image:
    """The image with container settings changed; `env` and `labels` are merged by name.

    Setting `entrypoint` clears an inherited `cmd` unless one is given, as a Dockerfile does.
    """
    config = image.config
    settings = config.setdefault("config", {}) or {}
    config["config"] = settings
    if env is not None:
        merged = dict(item.split("=", 1) for item in settings.get("Env") or [] if "=" in item)
        merged.update(env)
        settings["Env"] = [f"{key}={value}" for key, value in merged.items()]
    if user is not None:
        settings["User"] = user
    if workdir is not None:
        settings["WorkingDir"] = workdir
    if entrypoint is not None:
        settings["Entrypoint"] = list(entrypoint)
        settings.pop("Cmd", None)
    if cmd is not None:
        settings["Cmd"] = list(cmd)
    if exposed_ports is not None:
        ports = dict(settings.get("ExposedPorts") or {})
        ports.update({_port(port): {} for port in exposed_ports})
        settings["ExposedPorts"] = ports
    if labels is not None:
        settings["Labels"] = {**(settings.get("Labels") or {}), **labels}
    if healthcheck is not None:
        settings["Healthcheck"] = dict(healthcheck)
    return Image(canonical_json(config), image.layers, image.media_type)


def with_created(image: Image, created: int) -> Image:
    """The image with its `created` time (seconds since the epoch) set; history keeps its own."""
    config = image.config
    config["created"] = timestamp(created)
    return Image(canonical_json(config), image.layers, image.media_type)


def _port(port: str | int) -> str:
    text = str(port)
    return text if "/" in text else f"{text}/tcp"
