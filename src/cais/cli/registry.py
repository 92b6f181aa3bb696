"""`cais login`, `cais logout`: registry credentials shared with the docker CLI; `cais push`,
`cais pull`: images between registries and what cais holds (and the engine).

What cais built or pulled is pushed from its own cache with cais's registry client (no engine
needed); any other image is pushed by the engine that holds it. A pull reads the image into
cais's cache with the same client, then loads it into the engine.
"""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cais.errors import CaisError
from cais.output import LayerDisplay, note, out, success

if TYPE_CHECKING:
    from cais.registry.reference import Reference

__all__ = ["login", "logout", "pull", "push", "push_from_engine"]


def login(
    registry: Annotated[
        str | None, typer.Argument(help="Registry host[:port]; Docker Hub when omitted.")
    ] = None,
    username: Annotated[
        str | None, typer.Option("-u", "--username", metavar="USER", help="User name.")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password (or token) from standard input."),
    ] = False,
) -> None:
    """Log in to a registry: the credentials are checked, then saved where docker keeps them."""
    from cais.registry import credentials
    from cais.registry.auth import verify_login
    from cais.registry.credentials import Credentials
    from cais.registry.reference import DOCKER_HUB

    shown = registry or DOCKER_HUB
    if not username:
        if not sys.stdin.isatty():
            raise CaisError("A user name is needed", hint="pass `-u USER --password-stdin`")
        username = typer.prompt("Username")
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True)
    else:
        raise CaisError("No password was given", hint="pipe it in with `--password-stdin`")
    if not password:
        raise CaisError("The password is empty", hint="pipe it in with `--password-stdin`")
    creds = Credentials(username, password)
    verify_login(registry, creds)  # refuses wrong credentials before anything is saved
    where = credentials.store(registry, creds)
    success(f"Logged in to {shown} as `{username}`; saved in {where}")


def logout(
    registry: Annotated[
        str | None, typer.Argument(help="Registry host[:port]; Docker Hub when omitted.")
    ] = None,
) -> None:
    """Forget the saved credentials of a registry."""
    from cais.registry import credentials
    from cais.registry.reference import DOCKER_HUB

    shown = registry or DOCKER_HUB
    if credentials.erase(registry):
        success(f"Logged out of {shown}")
    else:
        success(f"Not logged in to {shown}; nothing to do")


def push(
    reference: Annotated[
        str, typer.Argument(metavar="IMAGE", help="Image to push: [registry/]name:tag.")
    ],
) -> None:
    """Push an image to its registry (Docker Hub when the name has none): from cais's cache when
    cais built or pulled it, else from the Docker Engine."""
    from cais.image.blobs import BlobStore
    from cais.image.local import lookup
    from cais.registry.reference import parse_reference

    ref = parse_reference(reference)
    store = BlobStore()
    image = None if ref.digest else lookup(store, str(ref))
    if image is not None:
        from cais.sinks.registry import push_image_value

        with LayerDisplay() as display:
            (pushed,) = push_image_value(image, [str(ref)], store=store, progress=display)
        digest = pushed.digest or ""
    else:
        digest = push_from_engine(ref)
    where = ref.registry if ref.explicit_registry else "Docker Hub"
    success(f"Pushed `{ref}` to {where}" + (f" ({digest})" if digest else ""))
    note(f"run it anywhere with `cais run {ref}`")
    out.print(f"{ref.name}@{digest}" if digest else str(ref), markup=False)


def push_from_engine(ref: "Reference") -> str:
    """Push `ref` with the Docker Engine's own push (an image only the engine holds), showing
    its layers; the digest the registry gave it ("" when the engine said none)."""
    from cais.engine.client import connect, engine_host, unreachable
    from cais.engine.images import push as push_image
    from cais.errors import EngineError, ImageNotFound

    try:
        client = connect()
        with LayerDisplay() as display:
            return push_image(client, str(ref), display)
    except ImageNotFound as exc:
        raise ImageNotFound(
            f"`{ref}` is neither an image cais built or pulled nor one the Docker Engine holds",
            hint=f"build it with `cais build -t {ref}`, or name it with `cais tag IMAGE {ref}`",
        ) from exc
    except EngineError as exc:
        if exc.message != unreachable().message:
            raise
        raise EngineError(
            f"`{ref}` is not an image cais built or pulled, and no Docker Engine answers at "
            f"`{engine_host()}` to push it from",
            hint=f"build it with `cais build -t {ref}`, or start the Docker Engine",
        ) from exc


def pull(
    reference: Annotated[
        str, typer.Argument(metavar="IMAGE", help="Image to pull: [registry/]name:tag.")
    ],
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            metavar="OS/ARCH",
            help="Which image of a multi-platform one (the host's).",
        ),
    ] = None,
) -> None:
    """Pull an image from its registry into cais's cache and the Docker Engine."""
    from cais.engine.client import connect, engine_errors
    from cais.image import remote
    from cais.image.blobs import BlobStore
    from cais.image.local import remember
    from cais.image.platform import Platform
    from cais.registry.client import RegistryClient
    from cais.registry.reference import parse_reference
    from cais.sinks import engine

    ref = parse_reference(reference)
    wanted = Platform.parse(platform) if platform is not None else Platform.host()
    client = connect()
    with engine_errors():
        client.ping()  # before any download: the image goes there
    store = BlobStore()
    name = ref.digest or ref.tag or "latest"
    with RegistryClient(ref.registry) as registry:
        image = remote.read(registry, ref.repository, name, wanted, store=store)
        # What the registry calls it (an index's digest, for a multi-platform image): cais
        # would write the manifest in its own canonical form.
        digest = ref.digest or registry.manifest_digest(ref.repository, name) or image.digest
    for blob in (image.config_digest, *(layer.digest for layer in image.layers)):
        store.note_place(blob, registry.registry, ref.repository)  # a push may mount them
    tags = [] if ref.digest else [str(ref)]
    if tags:
        remember(store, tags, image)  # a later `cais push` of it needs no engine
    image_id = engine.write(image, client, tags=tags)
    success(f"Pulled `{ref}` ({image_id[7:19]}), {digest}")
    out.print(str(ref), markup=False)
