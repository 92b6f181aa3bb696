"""Containers in the Docker Engine: run (as `docker run --init`), list, logs, stop, remove,
exec."""

from __future__ import annotations

import heapq
import io
import os
import queue
import re
import signal
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import docker
from docker.models.containers import Container

from cais.engine.client import engine_errors
from cais.errors import CaisError, ContainerStartError, EngineError, ProjectError

__all__ = [
    "ContainerSummary",
    "Mounts",
    "RunOptions",
    "copy_logs",
    "create_container",
    "exec_command",
    "exec_in",
    "interactive_command",
    "list_containers",
    "parse_env_file",
    "parse_publish",
    "parse_volume",
    "prepare_mounts",
    "remove_container",
    "run_attached",
    "running_container",
    "start_container",
    "start_error",
    "stop_container",
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
class Mounts:
    """Volumes for the engine, and the user the container must run as to write them."""

    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    user: str | None = None
    environment: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerSummary:
    """One row of `cais ps`; `status` is the engine's own (`Up 3 minutes (healthy)`)."""

    id: str
    name: str
    image: str
    state: str
    status: str
    exit_code: int | None
    health: str | None
    ports: str
    created: str  # UTC, as `cais images` shows it: 2024-05-01 12:00:00


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


def _environment(options: RunOptions, mounts: Mounts | None = None) -> list[str]:
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
    if mounts is not None:
        given = {item.partition("=")[0] for item in items}
        items += [item for item in mounts.environment if item.partition("=")[0] not in given]
    return items


def _image_uid(client: docker.DockerClient, image: str) -> tuple[int, int] | None:
    """The non-root uid and gid an image runs as: `1000:1000` as cais images say it, or a
    name (`jovyan`, `app:staff`) looked up in the image's own /etc/passwd and /etc/group."""
    with engine_errors(image=image):
        user = client.images.get(image).attrs.get("Config", {}).get("User") or ""
    name, _, group = user.partition(":")
    if name in ("", "0", "root"):
        return None
    if name.isdigit() and group.isdigit():
        return int(name), int(group)
    passwd = _image_table(client, image, "/etc/passwd")
    entry = next((row for row in passwd if name in (row[0], row[2]) and len(row) > 3), None)
    if entry is None and not name.isdigit():
        return None  # the engine will say it has no such user
    uid = int(entry[2]) if entry else int(name)
    gid = int(entry[3]) if entry and entry[3].isdigit() else uid
    if group:
        groups = _image_table(client, image, "/etc/group")
        found = next((row for row in groups if group in (row[0], row[2])), None)
        gid = int(group) if group.isdigit() else int(found[2]) if found else gid
    return (uid, gid) if uid != 0 else None


def _image_table(client: docker.DockerClient, image: str, path: str) -> list[list[str]]:
    """The rows of a colon-separated file (/etc/passwd) in an image, read from a container
    that is created, never started."""
    with engine_errors(image=image):
        container = client.containers.create(image, command=["true"])
        try:
            chunks, _ = container.get_archive(path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
                member = archive.extractfile(archive.getmembers()[0])
                text = member.read().decode(errors="replace") if member else ""
        except docker.errors.NotFound:
            text = ""
        finally:
            container.remove(force=True)
    rows = [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
    return [row for row in rows if len(row) >= 3 and row[2].isdigit()]


def _writable_by(path: Path, uid: int, gid: int) -> bool:
    if uid == 0:
        return True
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & 0o200)
    if info.st_gid == gid:
        return bool(info.st_mode & 0o020)
    return bool(info.st_mode & 0o002)


def prepare_mounts(client: docker.DockerClient, options: RunOptions) -> Mounts:
    """Volumes for the engine, such that the image's user can write each bind-mounted folder.

    cais never changes the owner or mode of a path that exists. A folder it creates is given
    to the image's user (when cais runs as root) or belongs to you. An existing folder the
    image's user cannot write makes the container run as you (as root: as the folder's
    owner), with HOME=/tmp so the program has somewhere to write; when that user cannot
    write it either, this fails with what to do."""
    volumes: dict[str, dict[str, str]] = {}
    notes: list[str] = []
    unwritable: list[Path] = []
    image_user = _image_uid(client, options.image) if options.volumes else None
    for spec in options.volumes:
        source, bind = parse_volume(spec)
        volumes[source] = bind
        if not _is_host_path(source):
            continue
        path = Path(source)
        if not path.exists():
            if bind["mode"] == "ro":
                raise ProjectError(
                    f"`{path}` does not exist, so there is nothing to mount read-only",
                    hint="check the path, or drop `:ro` to have cais create the folder",
                )
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise ProjectError(
                    f"cais cannot create `{path}` to mount it: {exc.strerror}",
                    hint="create it yourself, or mount a folder in a place you can write",
                ) from exc
            if image_user is not None and os.geteuid() == 0:
                os.chown(path, *image_user)
                notes.append(f"created `{path}` for the image's user (uid {image_user[0]})")
                continue
            notes.append(f"created `{path}`")
        writes = bind["mode"] == "rw" and path.is_dir() and image_user is not None
        if writes and not _writable_by(path, *image_user):
            unwritable.append(path)
    if not unwritable:
        return Mounts(volumes, notes=tuple(notes))
    assert image_user is not None
    uid, gid, who = _runner(unwritable)
    for path in unwritable:
        if not _writable_by(path, uid, gid):
            raise ProjectError(
                f"`{path}` cannot be written by the image's user (uid {image_user[0]}) "
                f"nor by {who} (uid {uid})",
                hint="mount a folder you own, add `:ro` if the program only reads it, "
                f"or let the image's user write it (`sudo chown {image_user[0]} {path}`)",
            )
    folders = ", ".join(f"`{path}`" for path in unwritable)
    notes.append(
        f"the image's user (uid {image_user[0]}) cannot write {folders}: "
        f"the container runs as {who} ({uid}:{gid}) with HOME=/tmp"
    )
    return Mounts(volumes, f"{uid}:{gid}", ("HOME=/tmp",), tuple(notes))


def _runner(folders: list[Path]) -> tuple[int, int, str]:
    """Who the container runs as when the image's user cannot write `folders`: you; as root,
    the folders' owner, so what the program writes stays theirs."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), "you"
    owners = {(path.stat().st_uid, path.stat().st_gid) for path in folders}
    if len(owners) == 1:
        uid, gid = owners.pop()
        return uid, gid, "the folder's owner" if len(folders) == 1 else "the folders' owner"
    return 0, 0, "you"


def create_container(client: docker.DockerClient, options: RunOptions, mounts: Mounts) -> Container:
    """Create (not start) a container with an init process as PID 1, as `docker run --init`
    does, so that signals reach the program."""
    ports: dict[str, object] = {}
    for spec in options.publish:
        key, host = parse_publish(spec)
        ports[key] = host
    environment = _environment(options, mounts)
    with engine_errors(image=options.image):
        try:
            return client.containers.create(
                options.image,
                command=options.command or None,
                ports=ports or None,
                volumes=mounts.volumes or None,
                environment=environment or None,
                name=options.name,
                user=mounts.user,
                init=True,
                # a detached run's --rm is the engine's job; an attached one removes its own
                auto_remove=options.remove and options.detach,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and options.name:
                raise EngineError(
                    f"A container named `{options.name}` already exists",
                    hint=f"remove it with `cais rm {options.name}`, or choose another `--name`",
                ) from exc
            raise


def start_container(container: Container, options: RunOptions) -> None:
    """Start a created container. One that does not start is removed with `--rm` and kept
    otherwise, as docker does; the error carries docker's exit code."""
    with engine_errors(container=container.name):
        try:
            container.start()
        except docker.errors.APIError as exc:
            if options.remove:
                _remove_quietly(container)
            raise _kept(
                start_error(str(exc.explanation or exc), options), container, options
            ) from exc


def _kept(
    error: ContainerStartError, container: Container, options: RunOptions
) -> ContainerStartError:
    """`error`, saying that the container is kept when no `--rm` asked for it to go."""
    if not options.remove:
        kept = (
            f"the container `{container.name}` was kept: remove it with `cais rm {container.name}`"
        )
        error.hint = f"{error.hint}; {kept}" if error.hint else kept
    return error


_EXEC = re.compile(r'exec: "?([^":]+)"?: (.*?)(?:: unknown)?$')
_BUSY_PORT = re.compile(r"(?:Bind for |listen tcp[46]? )(\S*):(\d+)")
# tini, the init process, reports a command it cannot run this way, then exits 126 or 127.
_INIT_MARK = b"[FATAL tini"
_INIT_FAILURE = re.compile(rb"\[FATAL tini \(\d+\)\] exec (.+) failed: (.+)")


def start_error(text: str, options: RunOptions) -> ContainerStartError:
    """The engine's reason a container did not start, as one sentence and docker's exit code."""
    port = _BUSY_PORT.search(text)
    if port or "port is already allocated" in text or "address already in use" in text:
        number = port.group(2) if port else "?"
        return ContainerStartError(
            f"The host port `{number}` is already in use, so the container from "
            f"`{options.image}` could not start",
            hint="publish another host port with `-p OTHER:CONTAINER`, or stop what uses it "
            "(`cais ps` lists containers)",
        )
    found = _EXEC.search(text)
    if found:
        return _command_error(found.group(1), found.group(2), "run", options.image)
    return ContainerStartError(f"The container from `{options.image}` could not start: {text}")


def _command_error(command: str, reason: str, verb: str, name: str) -> ContainerStartError:
    """Docker's semantics: 126 for a command that cannot be executed, 127 for a missing one.
    `verb` is `run` (`name` an image) or `exec` (`name` a container)."""
    where = f"the image `{name}`" if verb == "run" else f"the container `{name}`"
    if "permission denied" in reason.lower() or "is a directory" in reason.lower():
        return ContainerStartError(
            f"`{command}` cannot be executed in {where}",
            hint="give a program the image can run (a file with its executable bit set)",
            exit_code=126,
        )
    hint = (
        "check its spelling and that the image installs it; give its full path if it is "
        "not on the image's PATH"
    )
    if command.startswith("-"):
        # An option written after the image by habit: as docker, it is the command.
        noun = "the image" if verb == "run" else "the container"
        hint = f"options go before {noun}, as in `cais {verb} {command} … {name}`"
    return ContainerStartError(
        f"The command `{command}` does not exist in {where}", hint=hint, exit_code=127
    )


def run_attached(client: docker.DockerClient, container: Container, options: RunOptions) -> int:
    """Start a created container with its output attached first (as the docker CLI does, so
    none is lost), copy stdout to stdout and stderr to stderr until it exits, and return its
    exit code. Ctrl-C or SIGTERM, from the start on, stops it; `--rm` removes it whatever
    happens."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    held: bytes | None = b""  # the start of stderr, while it may be the init's own failure
    output = None
    try:
        with engine_errors(container=container.name):
            output = client.api.attach(container.id, stream=True, logs=False, demux=True)
        start_container(container, options)
        with engine_errors(container=container.name):
            for stdout, stderr in output:
                _copy(stdout, None)
                if stderr and held is not None:
                    held += stderr
                    if held[: len(_INIT_MARK)] == _INIT_MARK[: len(held)]:
                        continue
                    stderr, held = held, None
                _copy(None, stderr)
            code = int(container.wait().get("StatusCode", 1))
        failure = _INIT_FAILURE.match(held or b"")
        if failure and code in (126, 127):
            command, reason = (part.decode(errors="replace") for part in failure.groups())
            raise _kept(
                _command_error(command, reason.strip(), "run", options.image), container, options
            )
        _copy(None, held)
        return code
    except (KeyboardInterrupt, BrokenPipeError) as exc:
        # Ctrl-C, or a reader that went away (`| head -1`): the program ends, as in a pipe.
        with engine_errors(container=container.name):
            container.stop(timeout=10)
        if isinstance(exc, BrokenPipeError):
            raise
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if output is not None:
            output.close()
        if options.remove:
            _remove_quietly(container)


def _remove_quietly(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.APIError:
        pass  # already gone


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


_EXITED = re.compile(r"^Exited \((-?\d+)\)")
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def list_containers(client: docker.DockerClient, *, all: bool = False) -> list[ContainerSummary]:
    """The engine's list of containers in one call, with its status text (`Up 3 minutes`,
    `Exited (0) 2 seconds ago`) from which the exit code and health are read."""
    with engine_errors():
        rows = client.api.containers(all=all)
    out = []
    for row in rows:
        status = row.get("Status", "")
        exited = _EXITED.match(status)
        health = _HEALTH.search(status)
        out.append(
            ContainerSummary(
                id=row["Id"][:12],
                name=(row.get("Names") or ["/"])[0].lstrip("/"),
                image=row.get("Image", ""),
                state=row.get("State", ""),
                status=status,
                exit_code=int(exited.group(1)) if exited else None,
                health=health.group(1).removeprefix("health: ") if health else None,
                ports=_ports(row.get("Ports") or []),
                created=datetime.fromtimestamp(int(row.get("Created", 0)), timezone.utc).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
            )
        )
    return out


def _ports(bindings: list[dict]) -> str:
    shown: list[str] = []
    for binding in bindings:
        inside = f"{binding.get('PrivatePort')}/{binding.get('Type', 'tcp')}"
        if binding.get("PublicPort"):
            text = f"{binding.get('IP', '')}:{binding['PublicPort']}->{inside}"
        else:
            text = inside
        if text not in shown and not (binding.get("IP") == "::" and binding.get("PublicPort")):
            shown.append(text)
    return ", ".join(shown)


def _get(client: docker.DockerClient, name: str) -> Container:
    with engine_errors(container=name):
        return client.containers.get(name)


def copy_logs(client: docker.DockerClient, name: str, *, follow: bool) -> None:
    """A container's output, as `docker logs`: its stdout to our stdout, its stderr to our
    stderr, in the order it was written; following, also what comes until it stops."""
    container = _get(client, name)
    if follow:
        _follow(container)
        return
    with engine_errors(container=name):
        stdout = container.logs(stdout=True, stderr=False, timestamps=True)
        stderr = container.logs(stdout=False, stderr=True, timestamps=True)
    # Each line starts with its time, of fixed width, so the two merge in order as text.
    merged = heapq.merge(
        ((line, 1) for line in _lines(stdout)), ((line, 2) for line in _lines(stderr))
    )
    for line, stream in merged:
        text = line.partition(b" ")[2]
        _copy(text if stream == 1 else None, text if stream == 2 else None)


def _lines(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _follow(container: Container) -> None:
    """Two streams copied side by side: the SDK's one stream of logs loses which was which.
    The first failure of either (a closed pipe, the engine) ends both at once."""
    ended: queue.Queue[Exception | None] = queue.Queue()

    def pump(stdout: bool) -> None:
        try:
            with engine_errors(container=container.name):
                for chunk in container.logs(
                    stream=True, follow=True, stdout=stdout, stderr=not stdout
                ):
                    _copy(chunk if stdout else None, None if stdout else chunk)
        except Exception as exc:  # noqa: BLE001 - raised again in the calling thread
            ended.put(exc)
        else:
            ended.put(None)

    for kind in (True, False):
        threading.Thread(target=pump, args=(kind,), daemon=True).start()
    for _ in range(2):
        failure = ended.get()
        if failure is not None:
            raise failure


def stop_container(client: docker.DockerClient, name: str, *, timeout: int = 10) -> None:
    container = _get(client, name)
    with engine_errors(container=name):
        container.stop(timeout=timeout)


def remove_container(client: docker.DockerClient, name: str, *, force: bool = False) -> None:
    container = _get(client, name)
    if container.status == "running" and not force:
        raise EngineError(
            f"The container `{name}` is running",
            hint=f"stop it first with `cais stop {name}`, or remove it anyway with `cais rm -f {name}`",
        )
    with engine_errors(container=name):
        container.remove(force=force)


def running_container(client: docker.DockerClient, name: str) -> Container:
    container = _get(client, name)
    if container.status != "running":
        raise EngineError(
            f"The container `{name}` is not running",
            hint=f"start a new one with `cais run`, or see why it stopped with `cais logs {name}`",
        )
    return container


def exec_in(client: docker.DockerClient, name: str, command: list[str]) -> int:
    """Run `command` in a running container, its stdout and stderr to ours; its exit code."""
    container = running_container(client, name)
    with engine_errors(container=name):
        exec_id = client.api.exec_create(container.id, command)["Id"]
        for stdout, stderr in client.api.exec_start(exec_id, stream=True, demux=True):
            # The engine reports a command it cannot run on the output stream.
            failed = stdout and stdout.startswith(b"OCI runtime exec failed")
            found = _EXEC.search(stdout.decode(errors="replace").strip()) if failed else None
            if found:
                raise _command_error(found.group(1), found.group(2), "exec", name)
            _copy(stdout, stderr)
        code = client.api.exec_inspect(exec_id).get("ExitCode")
    return int(code if code is not None else 1)


def _copy(stdout: bytes | None, stderr: bytes | None) -> None:
    for data, stream in ((stdout, sys.stdout), (stderr, sys.stderr)):
        if data:
            stream.buffer.write(data)
            stream.buffer.flush()


def exec_command(name: str, command: list[str], docker_cli: str, *, tty: bool) -> list[str]:
    """The `docker exec -i[t]` command for an interactive session in a running container."""
    if tty and not os.isatty(0):
        raise CaisError(
            "`--tty` needs a terminal, and standard input is not one",
            hint="run it from a terminal, or drop -t",
        )
    return [docker_cli, "exec", "-it" if tty else "-i", name, *command]


def interactive_command(
    options: RunOptions, docker_cli: str, mounts: Mounts, *, tty: bool = True
) -> list[str]:
    """The `docker run -i[t] --init` command for an interactive session: standard input and
    a terminal attached to a container are the docker CLI's job, so cais hands it over with
    the same options. `-i` alone works with piped input; `-t` needs a terminal."""
    if tty and not os.isatty(0):
        raise CaisError(
            "`--tty` needs a terminal, and standard input is not one",
            hint="run it from a terminal, or use `-i` alone to pipe input into the container",
        )
    args = [docker_cli, "run", "-it" if tty else "-i", "--init"]
    if options.remove:
        args.append("--rm")
    if options.name:
        args += ["--name", options.name]
    if mounts.user:
        args += ["--user", mounts.user]
    for spec in options.publish:
        parse_publish(spec)
        args += ["-p", spec]
    for spec in options.volumes:
        source, bind = parse_volume(spec)
        args += ["-v", f"{source}:{bind['bind']}:{bind['mode']}"]
    for item in _environment(options, mounts):
        args += ["-e", item]
    return [*args, options.image, *options.command]
