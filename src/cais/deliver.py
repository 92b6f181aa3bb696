"""Where a build goes: the sinks a command names, checked before anything is built, then one
build and each sink in turn.

`plan_delivery` turns the options (`--push`, `--load`, `--output oci:DIR|tar:FILE`, the tags
and the platforms) into a `Delivery`, refusing what cannot work before any layer is written:
with no sink named, the image goes to the engine when one answers, and otherwise the command
asks for `--push` or `--output`. `deliver` hands an `Image` (or an `ImageIndex` of several
platforms) to each sink: registries through cais's registry client (with its SBOM attached as
an OCI 1.1 referrer), the engine through its image-load API, OCI layouts and tarballs as files.
`build_and_deliver` is the whole of it for the OCI builder; an image built some other way (a
model's serving image) goes through `deliver` the same way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from cais.builders.base import BuildProgress
from cais.errors import CaisError, PlanError, SinkError
from cais.image.image import Image
from cais.image.index import ImageIndex
from cais.image.media import Compression
from cais.image.platform import Platform

if TYPE_CHECKING:
    import docker

    from cais.build import BuildOptions
    from cais.builders.oci import OCIBuilder
    from cais.plan import ImagePlan

__all__ = [
    "Delivered",
    "Delivery",
    "Sink",
    "SinkKind",
    "build_and_deliver",
    "deliver",
    "parse_output",
    "parse_platforms",
    "plan_delivery",
]


class SinkKind(str, Enum):
    PUSH = "push"  # the registry each tag names
    LOAD = "load"  # the Docker Engine
    OCI = "oci"  # an OCI image layout folder
    TAR = "tar"  # a tarball `docker load` reads


@dataclass(frozen=True)
class Sink:
    kind: SinkKind
    where: Path | None = None  # the folder or file of an output

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.where}" if self.where else f"--{self.kind.value}"


@dataclass(frozen=True)
class Delivered:
    """What one sink did: `reference` is a pushed `name@digest`, a file or folder, or a tag."""

    sink: Sink
    reference: str
    digest: str


def parse_output(value: str) -> Sink:
    """`oci:DIR` or `tar:FILE`, parsed."""
    kind, sep, where = value.partition(":")
    if not sep or kind not in (SinkKind.OCI.value, SinkKind.TAR.value) or not where:
        raise CaisError(
            f"`{value}` is not an output cais writes",
            hint="use `oci:DIR` (an OCI image layout) or `tar:FILE` (a tarball `docker load` "
            "reads)",
        )
    return Sink(SinkKind(kind), Path(where))


def parse_platforms(value: str | None) -> tuple[Platform, ...]:
    """`linux/amd64,linux/arm64` as platforms, each once; () when none is given (the host's)."""
    from cais.plan import parse_platform

    if value is None:
        return ()
    platforms: list[Platform] = []
    for text in value.split(","):
        platform = Platform.parse(parse_platform(text.strip()) or "")
        if platform in platforms:
            raise PlanError(
                f"The platform `{platform}` is named twice in `{value}`",
                hint="name each platform once, such as `--platform linux/amd64,linux/arm64`",
            )
        platforms.append(platform)
    return tuple(platforms)


@dataclass(frozen=True)
class Delivery:
    """The sinks of one build, checked; `engine` is a connected client when one is needed."""

    sinks: tuple[Sink, ...]
    tags: tuple[str, ...]
    platforms: tuple[Platform, ...] = ()
    engine: docker.DockerClient | None = None

    @property
    def engine_only(self) -> bool:
        """Only the engine gets the image: no layer needs compressing, and the engine's copy
        of the base is the one to read."""
        return all(sink.kind is SinkKind.LOAD for sink in self.sinks)

    def builder(self, *, no_cache: bool = False) -> OCIBuilder:
        """The OCI builder for these sinks. Its engine clients (it closes each) take the API
        version of `engine` when there is one: the engine is asked once per command."""
        from cais.builders.oci import OCIBuilder
        from cais.engine.client import connect

        version = self.engine.api.api_version if self.engine is not None else "auto"
        return OCIBuilder(
            engine=functools.partial(connect, timeout=30, version=version),
            prefer_engine=self.engine is not None and self.engine_only,
            compression=None if self.engine_only else Compression.GZIP,
            no_cache=no_cache,
        )


def plan_delivery(
    *,
    tags: Sequence[str],
    push: bool = False,
    load: bool = False,
    outputs: Sequence[str] = (),
    platforms: Sequence[Platform] = (),
    connect: Callable[[], docker.DockerClient] | None = None,
) -> Delivery:
    """The sinks the options name, refused in one sentence when they cannot work.

    With no sink named, the image goes to the engine when one answers; otherwise the command
    asks for `--push` or `--output`. Nothing is built or fetched before this returns.
    `connect` gives a client only when the engine answered (`cais.engine.client.connect`
    negotiates the API version): that request is the one this asks, and the client is the
    delivery's `engine`.
    """
    from cais.engine.client import engine_host
    from cais.sinks._tags import parse_tags

    tags = tuple(str(reference) for reference in parse_tags(tags))
    sinks = [Sink(SinkKind.PUSH)] if push else []
    sinks += [parse_output(value) for value in outputs]
    if load:
        sinks.append(Sink(SinkKind.LOAD))
    if len(platforms) > 1:
        _check_several_platforms(sinks, platforms)
    if connect is None:
        from cais.engine.client import connect as connect_engine

        connect = lambda: connect_engine(timeout=30)  # noqa: E731 - the default
    engine = None
    if load or not sinks:
        try:
            engine = connect()
        except CaisError as exc:
            if load:
                raise
            raise SinkError(
                f"No Docker Engine answers at `{engine_host()}` to load the image into",
                hint="push it with `--push`, or write it with `--output oci:DIR` or "
                "`--output tar:FILE`",
            ) from exc
        if not sinks:
            sinks.append(Sink(SinkKind.LOAD))
            if len(platforms) > 1:
                _check_several_platforms(sinks, platforms)
    return Delivery(tuple(sinks), tags, tuple(platforms), engine)


def _check_several_platforms(sinks: Sequence[Sink], platforms: Sequence[Platform]) -> None:
    """An image index goes to a registry or an OCI layout; the engine (Docker 20.10) holds one
    platform per tag, so a load takes the host's image of the index, which must be in it."""
    listed = ",".join(map(str, platforms))
    for sink in sinks:
        if sink.kind is SinkKind.TAR:
            raise SinkError(
                f"A `docker load` tarball holds one platform, and `{listed}` names "
                f"{len(platforms)}",
                hint="write them all with `--output oci:DIR` or `--push`, or give one `--platform`",
            )
        if sink.kind is SinkKind.LOAD and Platform.host() not in platforms:
            raise SinkError(
                f"The Docker Engine takes this machine's platform `{Platform.host()}` of an "
                f"image of several, and `{listed}` does not name it",
                hint="add it to `--platform`, or send the image with `--push` or "
                "`--output oci:DIR`",
            )


def deliver(
    image: Image | ImageIndex,
    delivery: Delivery,
    progress: BuildProgress,
    *,
    layout_tag: str | None = None,
    candidates: Sequence[str] | None = None,
) -> list[Delivered]:
    """Hand `image` to each sink of `delivery` in turn, telling `progress` of each step.

    `layout_tag` names the image in an OCI layout (by default the first tag's tag);
    `candidates` name the engine's images likely to share its first layers (its base, the
    image its tags named before).
    """
    from cais.registry.reference import parse_reference

    tags = list(delivery.tags)
    done: list[Delivered] = []
    for sink in delivery.sinks:
        progress.step(f"[{sink.kind.value}] {sink.where or ', '.join(tags)}")
        # Each sink imported when it is used: a load into the engine needs no registry client.
        if sink.kind is SinkKind.PUSH:
            from cais.sinks import registry

            pushed = registry.push_image_value(image, tags, progress=_blob_lines(progress))
            done += [
                Delivered(sink, tag, ref.digest or "")
                for tag, ref in zip(tags, pushed, strict=True)
            ]
        elif sink.kind is SinkKind.OCI:
            from cais.sinks import layout

            assert sink.where is not None
            name = layout_tag or parse_reference(tags[0]).tag
            layout.write(image, sink.where, tag=name)
            done.append(Delivered(sink, str(sink.where), image.digest))
        elif sink.kind is SinkKind.TAR:
            from cais.sinks import tarball

            assert sink.where is not None
            one = _one_platform(image)
            tarball.write(one, sink.where, tags=tags)
            done.append(Delivered(sink, str(sink.where), one.digest))
        else:
            from cais.sinks import engine

            assert delivery.engine is not None
            one = _one_platform(image)
            engine.write(one, delivery.engine, tags=tags, candidates=candidates)
            done.append(Delivered(sink, tags[0], one.id))
    return done


def _one_platform(image: Image | ImageIndex) -> Image:
    """The image itself, or the host's image of an index (plan_delivery made sure it is in)."""
    return image.image(Platform.host()) if isinstance(image, ImageIndex) else image


def _blob_lines(progress: BuildProgress):
    """The registry sink's blob reports as one line each when a blob is done."""
    from cais.sinks.registry import PUSHING

    def tell(blob: str, status: str, done: int, total: int) -> None:
        if status != PUSHING:
            progress.log(f"{blob[:12]}: {status} ({total} bytes)")

    return tell


@dataclass(frozen=True)
class Built:
    """What `build_and_deliver` made and where it went."""

    image: Image | ImageIndex
    plan: ImagePlan
    delivered: list[Delivered]
    seconds: float


def build_and_deliver(
    build: Callable[[OCIBuilder, BuildOptions, BuildProgress, bool], tuple[Image, ImagePlan]],
    options: BuildOptions,
    delivery: Delivery,
    progress: BuildProgress,
) -> Built:
    """Build with the OCI builder for each platform of `delivery` (the host's when none),
    then hand the image, or the index of them, to the sinks. `build(builder, options,
    progress, loading)` makes one platform's image (`loading`: it goes to the engine)."""
    from cais.image.local import remember

    started = time.monotonic()
    builder = delivery.builder(no_cache=options.no_cache)
    images: list[Image] = []
    plan = None
    for platform in delivery.platforms or (None,):
        wanted = replace(options, platform=str(platform) if platform else None)
        built, plan = build(builder, wanted, progress, delivery.engine is not None)
        images.append(built)
    assert plan is not None
    image: Image | ImageIndex = images[0] if len(images) == 1 else ImageIndex(tuple(images))
    # The images the tags name now are the likeliest to share layers beyond the base: after
    # an edit, all but the code's, which a load into the engine then leaves out.
    candidates = [plan.base_image, *delivery.tags]
    delivered = deliver(image, delivery, progress, layout_tag=plan.tag, candidates=candidates)
    remember(builder.store, delivery.tags, image)  # `cais push` then sends it with no engine
    return Built(image, plan, delivered, time.monotonic() - started)
