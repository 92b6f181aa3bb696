"""Proving a serving image before it is kept: each model loads inside it and predicts the
input example it was saved with (`python -m cais.server /model --check`, with every model's
folder for an image of several).

Where it runs: in the Docker Engine when one answers (the image loaded untagged, so no tag
moves before the proof); else in a scratch root on this machine, the layers unpacked into a
folder (whiteouts honoured) and the check run there under chroot, when the image is for this
machine's platform and cais runs as root; else it cannot run, and the build says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from cais.errors import BuildError, CaisError
from cais.image.image import Image
from cais.image.platform import Platform
from cais.plan.serving import MODEL_DIR

if TYPE_CHECKING:
    import docker

__all__ = [
    "CHECK",
    "Proof",
    "check_command",
    "discard",
    "prove",
    "prove_in_engine",
    "prove_in_root",
    "unpack",
]


def check_command(folders: tuple[str, ...] = (MODEL_DIR,)) -> tuple[str, ...]:
    """The server's check of the models in `folders`: each loads and predicts its example."""
    return ("python", "-m", "cais.server", *folders, "--check")


CHECK = check_command()

# What an image serves, as its messages name it: one model's reference, or several's.
Served = str | tuple[str, ...]
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_LOG_LINES = 15


class Proof(str, Enum):
    """Where a serving image was proved, as the build's output says it."""

    ENGINE = "the model was loaded and its example predicted in the image, in the Docker Engine"
    ROOT = (
        "the model was loaded and its example predicted in the image, unpacked into a scratch "
        "root on this machine (no Docker Engine answered)"
    )
    NONE = "the image was not proved: {why}"


def prove(
    image: Image,
    model: Served,
    *,
    engine: Callable[[], docker.DockerClient] | None,
    scratch: Path,
    keep: bool = True,
    folders: tuple[str, ...] = (MODEL_DIR,),
    candidates: Sequence[str] | None = None,
) -> tuple[Proof, str]:
    """Prove `image` (serving `model`, from `folders` in it) where it can be; BuildError when
    the check fails. Without `keep`, an image the engine did not hold before is removed from
    it after. `candidates` (the base image) name the images likely to hold its first layers,
    so the load asks about those rather than every image in the engine. Returns where it ran
    and the sentence that says so."""
    command = check_command(folders)
    client = _answering(engine)
    if client is not None:
        try:
            # An engine runs no image of another platform (without QEMU it fails to exec).
            foreign = _foreign_to(client, image.platform)
            if foreign is None:
                prove_in_engine(
                    client, image, model, keep=keep, command=command, candidates=candidates
                )
                return Proof.ENGINE, Proof.ENGINE.value
        finally:
            client.close()
        return Proof.NONE, Proof.NONE.value.format(why=foreign)
    why = _cannot_unpack(image.platform)
    if why is None:
        prove_in_root(image, model, scratch=scratch, command=command)
        return Proof.ROOT, Proof.ROOT.value
    return Proof.NONE, Proof.NONE.value.format(why=f"no Docker Engine answered, and {why}")


def _answering(engine: Callable[[], docker.DockerClient] | None) -> docker.DockerClient | None:
    if engine is None:
        return None
    try:
        client = engine()
        from cais.engine.client import engine_errors

        with engine_errors():
            client.ping()
    except CaisError:
        return None
    return client


def _foreign_to(client: docker.DockerClient, platform: Platform) -> str | None:
    """Why the engine cannot run an image for `platform`, or None when it can."""
    from cais.engine.client import engine_errors

    with engine_errors():
        version = client.version()
    host = Platform.host()  # what an engine that does not say is taken to be
    engine = Platform.parse(
        f"{version.get('Os') or host.os}/{version.get('Arch') or host.architecture}"
    )
    if (platform.os, platform.architecture) == (engine.os, engine.architecture):
        return None
    return f"an image for `{platform}` does not run on the Docker Engine's `{engine}`"


def _cannot_unpack(platform: Platform) -> str | None:
    """Why the check cannot run in a scratch root here, or None when it can."""
    if platform.os != Platform.host().os or platform.architecture != Platform.host().architecture:
        return f"an image for `{platform}` does not run on this `{Platform.host()}` machine"
    if os.geteuid() != 0:
        return "a scratch root needs cais to run as root (chroot)"
    if shutil.which("chroot") is None:
        return "this machine has no `chroot`"
    return None


def prove_in_engine(
    client: docker.DockerClient,
    image: Image,
    model: Served,
    *,
    keep: bool = True,
    command: tuple[str, ...] = CHECK,
    candidates: Sequence[str] | None = None,
) -> None:
    """Load `image` untagged and run the check in a container, removed whatever happens; an
    image that fails (or any, without `keep`) is removed again unless the engine held it."""
    from cais.engine.images import image_exists
    from cais.sinks import engine

    held = image_exists(client, image.id)
    engine.write(image, client, candidates=candidates)
    try:
        check_in_engine(client, image.id, model, command=command)
    except BaseException:
        if not held:
            discard(client, image.id)
        raise
    if not keep and not held:
        discard(client, image.id)


def check_in_engine(
    client: docker.DockerClient, image_id: str, model: Served, *, command: tuple[str, ...] = CHECK
) -> None:
    """Run the model's check in the image; its container is removed whatever happens (an
    interrupted check included). It keeps the network a served model would have: a model
    may call a service as it predicts."""
    import docker.errors

    from cais.engine.client import engine_errors

    with engine_errors(image=image_id):
        container = client.containers.create(image_id, list(command))
        try:
            container.start()
            if container.wait()["StatusCode"] != 0:
                text = container.logs(stdout=False, stderr=True).decode(errors="replace")
                raise _failed(model, text)
        finally:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass  # the check's own outcome matters more


def discard(client: docker.DockerClient, image_id: str) -> None:
    """Remove an image that failed its check, unless a tag already held it (a rebuild of an
    image that was kept before), with the classic builder's step images that only it used (as
    `docker rmi` does: kept, they would show as untagged images)."""
    import docker.errors

    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)
    except docker.errors.DockerException:
        pass  # best effort: the failure being reported matters more


def prove_in_root(
    image: Image, model: Served, *, scratch: Path, command: tuple[str, ...] = CHECK
) -> None:
    """Unpack `image` into a folder under `scratch` and run the check there, chrooted, as the
    image's user, with the image's environment; the folder is removed after."""
    config = image.config.get("config") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    user = config.get("User") or "0:0"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="proof-") as tmp:
        root = Path(tmp)
        try:
            unpack(image, root)
        except (tarfile.TarError, OSError) as exc:
            raise BuildError(
                f"The image for {_named(model)} could not be unpacked into a scratch root to "
                f"prove it ({exc})",
                hint="prove it in a Docker Engine: start one, or set DOCKER_HOST",
            ) from exc
        done = subprocess.run(
            [shutil.which("chroot") or "chroot", f"--userspec={user}", str(root), *command],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise _failed(model, done.stderr or done.stdout)


def unpack(image: Image, root: Path) -> None:
    """The image's filesystem in `root`: each layer over the ones below, its whiteouts
    (`.wh.NAME`) removing NAME and its opaque markers emptying their folder first."""
    for layer in image.layers:
        with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("/").removeprefix("./")
                folder, _, base = name.rpartition("/")
                if base == _OPAQUE:
                    for child in (root / folder).glob("*"):
                        _remove(child)
                elif base.startswith(_WHITEOUT):
                    _remove(root / folder / base.removeprefix(_WHITEOUT))
                elif member.isdev():
                    continue  # device files: the check needs none, and a container gets its own
                else:
                    if not member.isdir():
                        _remove(root / name)  # a file replaced by a later layer's version
                    _extract(tar, member, root)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    """Extract one member under `root`, refusing a path that leaves it (through `..` or a
    symlink of an earlier layer). The `tar` filter does that and keeps the files' modes and
    owners, which the image's user needs; Pythons before 3.10.12 and 3.11.4 (Debian 12's
    3.11.2) have no filters, and get the same path check here."""
    if hasattr(tarfile, "tar_filter"):
        tar.extract(member, root, filter="tar")
        return
    top = os.path.realpath(root)
    target = os.path.realpath(os.path.join(top, member.name.lstrip("/")))
    if os.path.commonpath([top, target]) != top:  # what FilterError, a TarError, says
        raise tarfile.TarError(f"{member.name!r} would be extracted to {target!r}, outside {top}")
    tar.extract(member, root)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _named(model: Served) -> str:
    return ", ".join(f"`{m}`" for m in ((model,) if isinstance(model, str) else model))


def _failed(model: Served, log: str) -> BuildError:
    what = (
        f"The model `{model}` does not work inside the image built for it"
        if isinstance(model, str)
        else f"One of the models {_named(model)} does not work inside the image built for them"
    )
    return BuildError(
        f"{what}, so the image was not kept",
        log_tail=log.strip().splitlines()[-_LOG_LINES:],
        hint="the lines above say why: the image holds only the bundle's files and packages "
        "(`requirements=` of `cais.save_model` adds packages); `--python X.Y` builds on another "
        "Python",
    )
