"""Containers in the Docker Engine: run (as `docker run`), list, logs, stop."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.models.containers import Container

from cais.engine.client import engine_errors
from cais.errors import CaisError, ProjectError

__all__ = [
    "ContainerSummary",
    "RunOptions",
    "VolumeFix",
    "follow_logs",
    "interactive_command",
    "list_containers",
    "parse_env_file",
    "parse_publish",
    "parse_volume",
    "prepare_bind_mounts",
    "run_container",
    "stop_container",
    "wait_attached",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class RunOptions:
    image: str
    command: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    env_files: list[Path] = field(default_factory=list)
    name: str | None = None
    detach: bool = False
    remove: bool = False


@dataclass(frozen=True)
class VolumeFix:
    """What cais did so that the container's user can write a bind-mounted folder."""

    path: Path
    action: str


@dataclass(frozen=True)
class ContainerSummary:
    id: str
    name: str
    image: str
    status: str
    ports: str


def parse_publish(spec: str) -> tuple[str, object]:
    """`8080:80`, `127.0.0.1:8080:80`, `80`, `8080:80/udp` → the SDK's (container port, host)."""
    body, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    parts = body.rsplit(":", 2) if body.count(":") <= 2 else None
    if not parts or protocol not in ("tcp", "udp", "sctp") or not all(parts[-2:]):
        raise ProjectError(
            f"`{spec}` is not a port mapping", hint="use HOST_PORT:CONTAINER_PORT, such as 8080:80"
        )
    try:
        container_port = int(parts[-1])
        host_port = int(parts[-2]) if len(parts) >= 2 else None
    except ValueError:
        raise ProjectError(
            f"`{spec}` is not a port mapping", hint="ports are numbers, such as 8080:80"
        ) from None
    for port in (container_port, host_port):
        if port is not None and not 0 < port < 65536:
            raise ProjectError(f"`{port}` in `{spec}` is not a port number (1-65535)")
    key = f"{container_port}/{protocol}"
    if len(parts) == 3:
        return key, (parts[0], host_port)
    return key, host_port


def parse_volume(spec: str) -> tuple[str, dict[str, str]]:
    """`./out:/data[:ro]` or `name:/data` → the SDK's (source, {bind, mode})."""
    pieces = spec.split(":")
    if len(pieces) not in (2, 3) or not pieces[0] or not pieces[1].startswith("/"):
        raise ProjectError(
            f"`{spec}` is not a volume",
            hint="use HOST_FOLDER:/path/in/container[:ro], such as ./output:/data",
        )
    mode = pieces[2] if len(pieces) == 3 else "rw"
    if mode not in ("rw", "ro"):
        raise ProjectError(f"`{mode}` in `{spec}` is not a volume mode", hint="use ro or rw")
    source = pieces[0]
    if _is_host_path(source):
        source = str(Path(source).expanduser().resolve())
    return source, {"bind": pieces[1], "mode": mode}


def _is_host_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def parse_env_file(path: Path) -> list[str]:
    """A docker-style env file: KEY=VALUE per line, `#` comments, a bare KEY takes the host's."""
    if not path.is_file():
        raise ProjectError(f"The env file `{path}` does not exist")
    items = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        if not _ENV_NAME.match(key):
            raise ProjectError(f"Line {number} of `{path}` is not KEY=VALUE: `{raw}`")
        if not sep:
            if key in os.environ:
                items.append(f"{key}={os.environ[key]}")
            continue
        items.append(f"{key}={value}")
    return items


def _environment(options: RunOptions) -> list[str]:
    items: list[str] = []
    for file in options.env_files:
        items += parse_env_file(file)
    for item in options.env:
        key, sep, _ = item.partition("=")
        if not _ENV_NAME.match(key):
            raise ProjectError(f"`{item}` is not an environment variable", hint="use KEY=VALUE")
        if not sep:
            if key in os.environ:
                items.append(f"{key}={os.environ[key]}")
            continue
        items.append(item)
    return items


def _image_uid(client: docker.DockerClient, image: str) -> tuple[int, int] | None:
    """The numeric user an image runs as, when it says one (cais images do)."""
    with engine_errors(image=image):
        user = client.images.get(image).attrs.get("Config", {}).get("User") or ""
    uid, _, gid = user.partition(":")
    if uid.isdigit():
        return int(uid), int(gid) if gid.isdigit() else int(uid)
    return None


def _writable_by(path: Path, uid: int, gid: int) -> bool:
    if uid == 0:
        return True
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & 0o200)
    if info.st_gid == gid:
        return bool(info.st_mode & 0o020)
    return bool(info.st_mode & 0o002)


def prepare_bind_mounts(
    client: docker.DockerClient, options: RunOptions
) -> tuple[dict[str, dict[str, str]], str | None, list[VolumeFix]]:
    """Volumes for the SDK, a user override, and what was done so that the container's
    non-root user can write each bind-mounted host folder without anyone knowing uids.

    As root, cais hands a folder the container cannot write to the image's user; as another
    user, the container runs as that user, who owns the folder."""
    volumes: dict[str, dict[str, str]] = {}
    fixes: list[VolumeFix] = []
    user: str | None = None
    image_user = _image_uid(client, options.image) if options.volumes else None
    for spec in options.volumes:
        source, bind = parse_volume(spec)
        volumes[source] = bind
        if not _is_host_path(source) or bind["mode"] == "ro" or image_user is None:
            continue
        path = Path(source)
        if not path.exists():
            path.mkdir(parents=True)
            fixes.append(VolumeFix(path, "created"))
        if not path.is_dir() or _writable_by(path, *image_user):
            continue
        if os.geteuid() == 0:
            os.chown(path, *image_user)
            fixes.append(VolumeFix(path, f"handed to uid {image_user[0]}, the image's user"))
        elif path.stat().st_uid == os.geteuid():
            user = f"{os.geteuid()}:{os.getegid()}"
            fixes.append(VolumeFix(path, "the container runs as you, the folder's owner"))
    return volumes, user, fixes


def run_container(
    client: docker.DockerClient, options: RunOptions
) -> tuple[Container, list[VolumeFix]]:
    """Create and start a container; the caller streams its output or leaves it detached."""
    ports: dict[str, object] = {}
    for spec in options.publish:
        key, host = parse_publish(spec)
        ports[key] = host
    environment = _environment(options)
    volumes, user, fixes = prepare_bind_mounts(client, options)
    with engine_errors(image=options.image):
        container = client.containers.run(
            options.image,
            command=options.command or None,
            ports=ports or None,
            volumes=volumes or None,
            environment=environment or None,
            name=options.name,
            user=user,
            detach=True,
            auto_remove=False,
        )
    return container, fixes


def wait_attached(container: Container, *, remove: bool) -> int:
    """Stream a started container's output to ours until it exits; Ctrl-C stops it."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with engine_errors(container=container.name):
            for chunk in container.logs(stream=True, follow=True):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            status = container.wait()
        return int(status.get("StatusCode", 1))
    except KeyboardInterrupt:
        with engine_errors(container=container.name):
            container.stop(timeout=10)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if remove:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def list_containers(client: docker.DockerClient, *, all: bool = False) -> list[ContainerSummary]:
    with engine_errors():
        containers = client.containers.list(all=all)
    out = []
    for container in containers:
        tags = container.attrs.get("Config", {}).get("Image", "")
        ports = []
        for key, bindings in (
            container.attrs.get("NetworkSettings", {}).get("Ports") or {}
        ).items():
            for binding in bindings or []:
                ports.append(f"{binding.get('HostIp', '')}:{binding.get('HostPort')}->{key}")
        out.append(
            ContainerSummary(
                container.short_id, container.name, tags, container.status, ", ".join(ports)
            )
        )
    return out


def _get(client: docker.DockerClient, name: str) -> Container:
    with engine_errors(container=name):
        return client.containers.get(name)


def follow_logs(client: docker.DockerClient, name: str, *, follow: bool) -> Iterator[bytes]:
    container = _get(client, name)
    with engine_errors(container=name):
        yield from container.logs(stream=True, follow=follow)


def stop_container(client: docker.DockerClient, name: str, *, timeout: int = 10) -> None:
    container = _get(client, name)
    with engine_errors(container=name):
        container.stop(timeout=timeout)


def interactive_command(options: RunOptions, docker_cli: str, user: str | None) -> list[str]:
    """The `docker run -it` command for an interactive session: a terminal attached to a
    container is the docker CLI's job, so cais hands it over with the same options."""
    if not os.isatty(0):
        raise CaisError(
            "`--interactive`/`--tty` needs a terminal, and standard input is not one",
            hint="run it from a terminal, or drop -i/-t",
        )
    args = [docker_cli, "run", "-it"]
    if options.remove:
        args.append("--rm")
    if options.name:
        args += ["--name", options.name]
    if user:
        args += ["--user", user]
    for spec in options.publish:
        parse_publish(spec)
        args += ["-p", spec]
    for spec in options.volumes:
        source, bind = parse_volume(spec)
        args += ["-v", f"{source}:{bind['bind']}:{bind['mode']}"]
    for item in _environment(options):
        args += ["-e", item]
    return [*args, options.image, *options.command]
