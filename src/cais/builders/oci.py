"""The OCI builder: a project's image assembled on the host, with no daemon and no emulation.

The base image's layers are read by digest (from a registry, or from the engine that holds
it); cais adds three layers of its own, each written deterministically (image/archive.py)
and kept in the layer cache under a key made of what went into it:

1. the user: the base's `/etc/passwd` and `/etc/group` with the user's lines, and its home;
2. the packages, installed on the host with uv for the image's Python and platform;
3. the program: the project folder as the Docker builder's `COPY . .` sees it.

The config says what the Docker builder's Dockerfile says (env, user, workdir, command,
ports, labels). The result is an `Image`, a value: where it goes is the sinks' business.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cais import __version__
from cais.builders.base import BuildProgress
from cais.builders.pip_settings import PipSettings
from cais.errors import BlobError, BuildError, CaisError
from cais.image.archive import Directory, Entry, File, entries_from_folder, write_layer
from cais.image.blobs import BlobStore, sha256_digest
from cais.image.image import Image, append_layers, canonical_json, with_config, with_created
from cais.image.layer import Layer
from cais.image.media import Compression, MediaType
from cais.image.platform import Platform
from cais.plan import ImagePlan, User
from cais.plan.serving import MODEL_DIR, RUNTIME_DIR
from cais.project import Project
from cais.registry.reference import Reference, parse_reference

if TYPE_CHECKING:
    import docker

    from cais.bundle.store import Bundle

__all__ = [
    "IMAGE_ENV",
    "LAYER_INDEX",
    "MODEL_SPLIT",
    "OCIBuilder",
    "base_reference",
    "check_platform",
    "install_target",
    "layer_time",
    "model_about",
    "split_model",
    "user_files",
]

# What the Docker builder's Dockerfile sets first (builders/dockerfile.py): no .pyc files,
# unbuffered output for `docker logs`, a quiet pip without a cache.
IMAGE_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
# A model file at least this large gets a layer of its own: registries and engines handle
# layers of a few hundred MB best, and a retried upload then re-sends one file, not the model.
MODEL_SPLIT = 512 << 20
# The layer cache: the blob store's index from a layer's input key to its diff id.
LAYER_INDEX = "layer"
# Every entry's mtime when SOURCE_DATE_EPOCH is not set: fixed (jib's choice), so a layer
# depends only on its content, and a code edit changes the code layer alone.
_FIXED_TIME = 1
_T = TypeVar("_T")


def layer_time() -> int:
    """The mtime of every entry of cais's layers: SOURCE_DATE_EPOCH, else a fixed time."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(epoch) if epoch.isdigit() else _FIXED_TIME


def base_reference(image: str) -> Reference:
    """Where a base image is read from: the registry it names, else the mirror named by
    CAIS_BASE_REGISTRY (with Docker Hub's paths, `HOST/library/python`), else Docker Hub."""
    from cais.bases import base_registry

    reference = parse_reference(image)
    mirror = base_registry()
    if reference.explicit_registry or mirror is None:
        return reference
    return Reference(mirror, reference.repository, reference.tag, reference.digest, True)


def user_files(passwd: bytes, group: bytes, user: User) -> tuple[bytes, bytes]:
    """`/etc/passwd` and `/etc/group` with a line for the user, as the Docker builder adds
    them: unless the base image has the uid (or gid) already, which it then keeps."""

    def taken(text: bytes, number: int) -> bool:
        return any(
            len(fields) > 2 and fields[2] == str(number).encode()
            for fields in (line.split(b":") for line in text.splitlines())
        )

    def ended(text: bytes) -> bytes:
        return text if not text or text.endswith(b"\n") else text + b"\n"

    if not taken(group, user.gid):
        group = ended(group) + f"{user.name}:x:{user.gid}:\n".encode()
    if not taken(passwd, user.uid):
        line = f"{user.name}:x:{user.uid}:{user.gid}::/home/{user.name}:/usr/sbin/nologin\n"
        passwd = ended(passwd) + line.encode()
    return passwd, group


@dataclass(frozen=True)
class _Made:
    """A layer of cais's, what it holds (its history entry), and whether the cache had it."""

    layer: Layer
    about: str
    cached: bool


class OCIBuilder:
    """Builds a project's plan into an `Image` on the host.

    Parameters:
        store: the blob store and layer cache (`~/.cache/cais` by default).
        engine: connects to the Docker Engine, to read a base image it holds; None when the
            build must not use one (it may not be running).
        prefer_engine: read the base from the engine before asking its registry (when the
            image goes only to that engine, which holds the base's layers already).
        compression: how new layers are compressed as they are written; None for an image
            bound only for the engine, which loads tars.
        no_cache: build every layer again (the results still go into the cache).
    """

    name = "oci"

    def __init__(
        self,
        *,
        store: BlobStore | None = None,
        engine: Callable[[], docker.DockerClient] | None = None,
        prefer_engine: bool = False,
        compression: Compression | None = Compression.GZIP,
        no_cache: bool = False,
    ) -> None:
        self.store = store or BlobStore()
        self._engine = engine
        self._prefer_engine = prefer_engine and engine is not None
        self._compression = compression
        self._no_cache = no_cache
        # The base's registry copies asked for (tried once a build: the listing of the base
        # and a sink's read of its layers ask the same question).
        self._copies: dict[tuple[str, str, str], Image | None] = {}
        self._copies_lock = threading.Lock()  # asked from the base's reading thread too

    def __repr__(self) -> str:
        return f"OCIBuilder(store={self.store!r})"

    @property
    def engine(self) -> Callable[[], docker.DockerClient] | None:
        """What connects to the Docker Engine, when the build may use one."""
        return self._engine

    def build(
        self,
        project: Project,
        plan: ImagePlan,
        pip: PipSettings,
        progress: BuildProgress,
    ) -> Image:
        """The image of `plan` (made from `project`); `pip` reaches uv, never a layer."""
        if plan.app.install_project:
            raise BuildError(
                f"`{project.path.name}` is a package to build (pyproject.toml names a build "
                "backend), and the OCI builder installs wheels only",
                hint="build with `--builder docker`",
            )
        platform = Platform.parse(plan.platform) if plan.platform else Platform.host()
        if plan.dependencies is not None:  # what cannot be done fails before any download
            from cais.builders.packages import check_supported

            check_supported(plan.dependencies)
            install_target(plan.python, platform)
        created = int((project.source_date or _epoch(0)).timestamp())
        when = layer_time()
        base = self._read_base(plan, platform, progress)
        # The base is read in the background: the layers that do not depend on it are made
        # meanwhile, the user layer once it is read (the image's order stays user, packages, app).
        packages: list[_Made] = []
        if plan.dependencies is not None:
            progress.step(f"[packages] for Python {plan.python} on {platform}, with uv")
            packages = self._packages_layers(project.path, plan, platform, pip, when)
        progress.step(f"[app] {plan.workdir}")
        app = self._app_layer(project, plan.workdir, when)
        progress.step(_user_step(plan.user))
        made = [self._user_layer(base, plan.user, when), *packages, app]
        for item in made:
            progress.log(
                f"{item.about}: {'cached' if item.cached else 'built'} {item.layer.diff_id}"
            )
        return _configured(_appended(base, created, made), plan)

    def _read_base(self, plan: ImagePlan, platform: Platform, progress: BuildProgress) -> Image:
        """The base image as an OCI image to build on, its step reported."""
        progress.step(f"[base] {plan.base_image} for {platform}")
        return self._base_image(plan, platform)

    def _base_image(self, plan: ImagePlan, platform: Platform) -> Image:
        """The base image as an OCI image to build on. Its layers' listing (the packages the
        SBOM names, the files the user layer extends) starts in the background: one pass over
        each layer, from the registry's compressed blobs where it can (cais.image.listing)."""
        from cais.image import listing

        base = self._base(plan.base_image, platform)
        base = Image(base.config_json, base.layers, MediaType.OCI_MANIFEST)

        def registry_copy() -> tuple[Layer, ...] | None:
            # The engine's base, read lazily: its registry's compressed layers are read
            # instead of an export, when that registry holds the same image.
            copy = self._registry_copy(plan.base_image, platform, base.config_digest)
            return copy.layers if copy is not None else None

        lazy = not all(layer.held for layer in base.layers)
        listing.read_ahead(base.layers, through=registry_copy if lazy else None)
        return base

    def build_bundle(
        self,
        models: Mapping[str, Bundle],
        plan: ImagePlan,
        requirements: str,
        pip: PipSettings,
        progress: BuildProgress,
    ) -> Image:
        """The image of a serving `plan` for `models` (each bundle by the folder it goes to):
        their packages from the `requirements` text, cais's serving runtime, then each model,
        last, so a new model version changes only its own layers."""
        from cais.builders.packages import find_python

        platform = Platform.parse(plan.platform) if plan.platform else Platform.host()
        install_target(plan.python, platform)
        created = _source_date(int(max(b.metadata.created for b in models.values()).timestamp()))
        when = layer_time()

        def base_and_user() -> tuple[Image, _Made, float, float]:
            started = time.monotonic()
            base = self._base_image(plan, platform)
            read = time.monotonic()
            user = self._user_layer(base, plan.user, when)
            return base, user, read - started, time.monotonic() - read

        # The base and the user layer need nothing of the packages: they are made beside them
        # (its own clients to the engine and the registry, the store's writes atomic). The
        # packages' failures come first (`auto` hands a package with no wheel to the Docker
        # builder); the base's, once they are installed.
        beside = _started(base_and_user)
        python = find_python(plan.python)
        if python is None:
            progress.log(
                f"no Python {plan.python} on this machine: the image's modules are not "
                "byte-compiled (they compile as they are imported)"
            )
        progress.step(f"[packages] for Python {plan.python} on {platform}, with uv")
        (self.store.root / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.store.root / "tmp", prefix="serving-") as tmp:
            folder = Path(tmp)
            (folder / "requirements.txt").write_text(requirements, encoding="utf-8")
            made = self._packages_layers(folder, plan, platform, pip, when, python)
            progress.step(f"[runtime] cais {__version__} in {RUNTIME_DIR}/cais")
            made.append(self._runtime_layer(folder / "cais", plan, when, python))
        # Reported once done, each with its own time (the step's own shows any wait for it).
        progress.step(f"[base] {plan.base_image} for {platform}")
        base, user, read, written = beside.result()
        progress.log(f"read in {read:.1f}s, beside the packages")
        progress.step(f"[user] {plan.user.name} ({plan.user.spec})")
        progress.log(f"made in {written:.1f}s, beside the packages")
        made.insert(0, user)
        for folder, bundle in models.items():
            progress.step(f"[model] {bundle.reference} in {folder}")
            made += self._model_layers(bundle, when, folder)
        for item in made:
            progress.log(
                f"{item.about}: {'cached' if item.cached else 'built'} {item.layer.diff_id}"
            )
        return _configured(_appended(base, created, made), plan)

    # The base image

    def _base(self, name: str, platform: Platform) -> Image:
        if self._prefer_engine:
            found, _ = self._from_engine(name, platform, lazy=True)
            if found is not None:
                return found
        # Imported here: a base the engine holds needs no registry client (nor httpx).
        from cais.image import remote
        from cais.registry.client import RegistryClient

        reference = base_reference(name)
        try:
            with RegistryClient(reference.registry) as client:
                return remote.read(
                    client,
                    reference.repository,
                    reference.digest or reference.tag or "latest",
                    platform,
                    store=self.store,
                )
        except CaisError as exc:
            found, engine = self._from_engine(name, platform)
            if found is not None:
                return found
            raise BuildError(
                f"The base image `{name}` for `{platform}` could not be read from "
                f"`{reference.registry}` ({exc.message.rstrip('.')}), and {engine}",
                hint="pull it into the engine, or name a registry that mirrors Docker Hub "
                "with `CAIS_BASE_REGISTRY=HOST`",
            ) from exc

    def _from_engine(
        self, name: str, platform: Platform, *, lazy: bool = False
    ) -> tuple[Image | None, str]:
        """The engine's copy of the base, or None and why there is none. A `lazy` copy has
        only its config in the store: its layers are exported when a sink reads them."""
        from cais.engine.client import engine_host
        from cais.image import engine_source

        if self._engine is None:
            return None, "no Docker Engine was asked"
        try:
            client = self._engine()
        except CaisError:
            return None, f"no Docker Engine answers at `{engine_host()}`"
        try:
            found = engine_source.read(
                client,
                name,
                store=self.store,
                platform=platform,
                connect=self._engine if lazy else None,
                config=(lambda digest: _config_blob(name, digest)) if lazy else None,
                pull=(lambda digest: self._pull_base(name, platform, digest)) if lazy else None,
            )
        finally:
            client.close()
        return found, f"the Docker Engine does not hold it for `{platform}`"

    def _pull_base(self, name: str, platform: Platform, config_digest: str) -> bool:
        """Put the tars of the base's layers in the store from its registry (tried once),
        when the registry's image has the config `config_digest`, the engine's copy."""
        image = self._registry_copy(name, platform, config_digest)
        if image is None:
            return False
        try:
            for layer in image.layers:
                with layer.uncompressed():  # decompressed into the store, checked by diff id
                    pass
        except CaisError:
            return False
        return True

    def _registry_copy(self, name: str, platform: Platform, config_digest: str) -> Image | None:
        """The base's image in its registry (tried once), its compressed layers in the store,
        when it has the config `config_digest` (the engine's copy); None when not."""
        key = (name, str(platform), config_digest)
        with self._copies_lock:  # a second asker waits for the first one's answer
            if key not in self._copies:
                self._copies[key] = self._read_copy(name, platform, config_digest)
            return self._copies[key]

    def _read_copy(self, name: str, platform: Platform, config_digest: str) -> Image | None:
        from cais.image import remote
        from cais.registry.client import RegistryClient

        reference = base_reference(name)
        tag = reference.digest or reference.tag or "latest"
        try:
            with RegistryClient(reference.registry, attempts=1, timeout=30) as client:
                manifest = client.get_manifest(reference.repository, tag, platform=str(platform))
                if manifest.data.get("config", {}).get("digest") != config_digest:
                    return None  # another image under that name
                return remote.read(
                    client, reference.repository, manifest.digest, platform, store=self.store
                )
        except CaisError:
            return None

    # The layers

    def _cached(self, key: str) -> Layer | None:
        if self._no_cache:
            return None
        return self._cached_layer(self.store.link(LAYER_INDEX, key))

    def _cached_layer(self, diff_id: str | None) -> Layer | None:
        if diff_id is None or not self.store.verify(diff_id):
            return None  # never built, pruned, or damaged (and now removed): build it again
        return Layer.from_store(self.store, diff_id)

    def _write(self, key: str, entries: dict[str, Entry], when: int) -> Layer:
        layer = self._written(entries, when)
        self.store.set_link(LAYER_INDEX, key, layer.diff_id)
        return layer

    def _written(self, entries: dict[str, Entry], when: int) -> Layer:
        """A layer of `entries`, with the distributions it holds noted for the SBOM."""
        from cais.image.listing import note_layer

        layer = write_layer(entries, store=self.store, created=when, compression=self._compression)
        note_layer(layer, entries)
        return layer

    def _user_layer(self, base: Image, user: User, when: int) -> _Made:
        about = f"user {user.name} ({user.spec}) and its home"
        key = _key("user", base.config_digest, user.name, user.uid, user.gid, when)
        found = self._cached(key)
        if found is not None:
            return _Made(found, about, cached=True)
        from cais.image import listing

        files = listing.files(base.layers, ("etc/passwd", "etc/group"))
        passwd, group = user_files(files.get("etc/passwd", b""), files.get("etc/group", b""), user)
        entries: dict[str, Entry] = {
            "etc/passwd": File(passwd, 0o644),
            "etc/group": File(group, 0o644),
            f"home/{user.name}": Directory(0o755, owner=(user.uid, user.gid)),
        }
        return _Made(self._write(key, entries, when), about, cached=False)

    def _packages_layers(
        self,
        folder: Path,
        plan: ImagePlan,
        platform: Platform,
        pip: PipSettings,
        when: int,
        python: str | None = None,
    ) -> list[_Made]:
        """The packages the requirement files of `folder` name: the small ones in one layer,
        each large one in a layer of its own. Their diff ids are cached together (a JSON list
        in the store) under one key. `python` byte-compiles a slimmed plan's modules."""
        from cais.builders.packages import (
            install,
            packages_key,
            site_packages,
            split_large,
            strip_tool,
        )

        deps = plan.dependencies
        assert deps is not None
        target = install_target(plan.python, platform)
        where = f"Python {plan.python} on {platform} (uv)"
        compile_with = python if deps.slim else None
        key = packages_key(deps, project=folder, target=target, pip=pip, created=when)
        if deps.slim:  # what the slimming can do on this machine changes the layer
            key = _key(
                key, strip_tool(target.machine), _interpreter(compile_with), list(deps.precompile)
            )
        found = self._cached_group(key, lambda name: _about(name, where))
        if found is not None:
            return found
        (self.store.root / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.store.root / "tmp", prefix="packages-") as tmp:
            entries = install(
                deps,
                project=folder,
                target=target,
                pip=pip,
                into=Path(tmp),
                compile_with=compile_with,
            )
            groups = split_large(entries, site_packages(target.python))
            return self._write_group(key, groups, lambda name: _about(name, where), when)

    def _cached_group(self, key: str, about: Callable[[str], str]) -> list[_Made] | None:
        """The layers cached together under `key` (a JSON list of `[name, diff id]` in the
        store), or None when any of them is missing or damaged."""
        listing = None if self._no_cache else self.store.link(LAYER_INDEX, key)
        if listing is None:
            return None
        try:
            named = json.loads(self.store.get(listing))
        except (BlobError, ValueError):
            return None
        layers = [self._cached_layer(diff_id) for _, diff_id in named]
        if not all(layer is not None for layer in layers):
            return None
        return [
            _Made(layer, about(name), cached=True)  # type: ignore[arg-type]
            for (name, _), layer in zip(named, layers, strict=True)
        ]

    def _write_group(
        self,
        key: str,
        groups: list[tuple[str, dict[str, Entry]]],
        about: Callable[[str], str],
        when: int,
    ) -> list[_Made]:
        """Write each named group of entries as a layer, and cache them together under `key`."""
        made = [
            _Made(self._written(group, when), about(name), cached=False) for name, group in groups
        ]
        named = [[name, item.layer.diff_id] for (name, _), item in zip(groups, made, strict=True)]
        self.store.set_link(LAYER_INDEX, key, self.store.put(canonical_json(named)))
        return made

    def _runtime_layer(self, folder: Path, plan: ImagePlan, when: int, python: str | None) -> _Made:
        """cais's serving runtime at /opt/cais/cais (byte-compiled when `python` can), keyed by
        cais's version and the files' content; the image's working folder with it."""
        from cais.build import copy_runtime
        from cais.builders.packages import byte_compile

        copy_runtime(folder)
        about = f"cais {__version__} serving runtime in {RUNTIME_DIR}/cais"
        key = _key("runtime", _tree_hash(folder), plan.workdir, _interpreter(python), when)
        found = self._cached(key)
        if found is not None:
            return _Made(found, about, cached=True)
        if python is not None:
            byte_compile(folder, f"{RUNTIME_DIR}/cais", python)
        entries = entries_from_folder(folder, f"{RUNTIME_DIR}/cais".lstrip("/"))
        entries[plan.workdir.strip("/")] = Directory()
        return _Made(self._write(key, entries, when), about, cached=False)

    def _model_layers(self, bundle: Bundle, when: int, folder: str = MODEL_DIR) -> list[_Made]:
        """The bundle at `folder`: its files in one layer, each file of `MODEL_SPLIT` bytes or
        more in a layer of its own. Keyed by the files' recorded sha256 (checked by
        `bundle.verify()`), so a rebuild hashes nothing again."""
        root = folder.strip("/")
        files = sorted(p for p in bundle.path.rglob("*") if p.is_file())
        recorded = bundle.metadata.files
        inputs = []
        for path in files:
            name = path.relative_to(bundle.path).as_posix()
            digest = recorded.get(name) or sha256_digest(path.read_bytes())
            inputs.append([name, path.stat().st_size, digest])
        # The folder is in the key only where it is not /model, the one model's folder.
        key = (
            _key("model", inputs, when)
            if folder == MODEL_DIR
            else _key("model", folder, inputs, when)
        )
        about = model_about(bundle.reference, folder)
        found = self._cached_group(key, about)
        if found is not None:
            return found
        entries = entries_from_folder(bundle.path, root)
        return self._write_group(key, split_model(entries, root), about, when)

    def _app_layer(self, project: Project, workdir: str, when: int) -> _Made:
        """The program, as `COPY . WORKDIR` copies it: the files .dockerignore (or cais's
        defaults) leaves in. The tar's digest is the tree's hash: writing it is the lookup."""
        entries = _context_entries(project.path, workdir.strip("/"))
        layer = write_layer(entries, store=self.store, created=when, compression=self._compression)
        return _Made(layer, f"COPY . {workdir}", cached=False)


def split_model(
    entries: dict[str, Entry], root: str, *, large: int = MODEL_SPLIT
) -> list[tuple[str, dict[str, Entry]]]:
    """The model's entries as layers: `("", the rest)` first, then `(path, the file)` for each
    file of at least `large` bytes, by path; a huge model is then no single giant layer."""
    big = sorted(
        path for path, entry in entries.items() if isinstance(entry, File) and _size(entry) >= large
    )
    rest = {path: entry for path, entry in entries.items() if path not in big}
    return [("", rest)] + [(path.removeprefix(root + "/"), {path: entries[path]}) for path in big]


def model_about(reference: str, folder: str = MODEL_DIR) -> Callable[[str], str]:
    """The history entry of a model layer (named by its file, for a file alone)."""
    return lambda name: f"model {reference} in {folder}" + (f": {name}" if name else "")


def _size(entry: File) -> int:
    return len(entry.source) if isinstance(entry.source, bytes) else entry.source.stat().st_size


def _tree_hash(folder: Path) -> str:
    """A folder's files by path and content (what its layer would hold)."""
    listing = [
        [path.relative_to(folder).as_posix(), sha256_digest(path.read_bytes())]
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]
    return sha256_digest(canonical_json(listing))


def _interpreter(python: str | None) -> str | None:
    """What byte-compiles (its full version: .pyc files may differ between patch releases)."""
    if python is None:
        return None
    import subprocess

    done = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    )
    return done.stdout.strip() or python


def _config_blob(name: str, digest: str) -> bytes | None:
    """A base image's config by its digest from the base's registry (tried once), or None."""
    from cais.registry.client import RegistryClient

    reference = base_reference(name)
    try:
        with RegistryClient(reference.registry, attempts=1, timeout=10) as client:
            return client.read_blob(reference.repository, digest)
    except CaisError:
        return None


def _started(work: Callable[[], _T]) -> Future[_T]:
    """`work` started in a thread of its own, its result or error in the future returned. A
    daemon thread: a build that fails first does not wait for it to end."""
    future: Future[_T] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(work())
        except BaseException as exc:  # raised where the result is asked for
            future.set_exception(exc)

    threading.Thread(target=run, name="cais-beside", daemon=True).start()
    return future


def _source_date(fallback: int) -> int:
    """The image's `created`: SOURCE_DATE_EPOCH, else `fallback` (an input, never the clock)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(epoch) if epoch.isdigit() else fallback


def _user_step(user: User) -> str:
    # The step's time is mostly the wait for the base's read, which the label says.
    return f"[user] {user.name} ({user.spec}), once the base is read"


def _appended(base: Image, created: int, made: list[_Made]) -> Image:
    return append_layers(
        with_created(base, created),
        [item.layer for item in made],
        created_by=[f"cais: {item.about}" for item in made],
    )


def _configured(image: Image, plan: ImagePlan) -> Image:
    """The config the Docker builder's Dockerfile gives (ENV, USER, WORKDIR, CMD, EXPOSE,
    LABEL, HEALTHCHECK with its timings)."""
    health = (
        {
            "Test": ["CMD", *plan.healthcheck],
            "Interval": 10_000_000_000,
            "Timeout": 3_000_000_000,
            "StartPeriod": 30_000_000_000,
            "Retries": 3,
        }
        if plan.healthcheck
        else None
    )
    return with_config(
        image,
        env={**IMAGE_ENV, **plan.env},
        user=plan.user.spec,
        workdir=plan.workdir,
        cmd=plan.entrypoint or None,
        exposed_ports=[str(port) for port in plan.ports] or None,
        labels=plan.labels,
        healthcheck=health,
    )


_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


def check_platform(platform: Platform) -> None:
    """Refuse a platform the OCI builder installs no packages for (before anything is fetched)."""
    if platform.os != "linux" or platform.architecture not in _MACHINES:
        raise BuildError(
            f"The OCI builder installs packages for `linux/amd64` and `linux/arm64`, not "
            f"`{platform}`",
            hint="build for one of those, or with `--builder docker`",
        )


def install_target(python: str, platform: Platform):
    """The Python and machine uv installs packages for; BuildError for a platform the OCI
    builder has no wheels for."""
    from cais.bundle.pins import Target

    check_platform(platform)
    return Target(python, _MACHINES[platform.architecture])


def _about(distribution: str, where: str) -> str:
    """A packages layer's history entry."""
    return f"package {distribution} for {where}" if distribution else f"packages for {where}"


def _key(*parts: object) -> str:
    return sha256_digest(canonical_json([__version__, *parts])).removeprefix("sha256:")


def _epoch(seconds: int):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc)


def _context_entries(context: Path, workdir: str) -> dict[str, Entry]:
    """The build context's files, under `workdir` in the image."""
    from cais.builders.context import context_paths
    from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE

    paths = sorted(context_paths(context, DEFAULT_DOCKERIGNORE))
    return entries_from_folder(context, workdir, paths=paths) or {workdir: Directory()}
