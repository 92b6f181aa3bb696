"""The stand-in base images scripts/test-infra serves at 127.0.0.1:5000/library/python:TAG, as
Docker Hub does: an index with an amd64 half (the engine's image, unchanged) and an arm64/v8
half unpacked by `debootstrap --foreign`. Read with cais's own registry client."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from cais.registry.client import Manifest, RegistryClient
from tests.support import REGISTRY, unavailable

pytestmark = [pytest.mark.registry]

TAGS = ["3.11-slim", "3.9-slim"]
PLATFORMS = {"amd64": "linux/amd64", "arm64": "linux/arm64/v8"}
# ELF e_machine of each architecture's binaries
MACHINES = {"amd64": 62, "arm64": 183}
ELF_MAGIC = b"\x7fELF"


@dataclass
class Half:
    """One platform's image of an index: its manifest, config, and the members of its layers."""

    manifest: Manifest
    config: dict
    members: dict[str, tarfile.TarInfo]
    machines: dict[str, int]  # the e_machine of every ELF file, by path
    diff_ids: list[str]  # the sha256 of each layer's tar, as read


class _Hashing:
    """A stream that hashes what is read from it."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        return data


def _elf_machine(header: bytes) -> int | None:
    if len(header) < 20 or not header.startswith(ELF_MAGIC):
        return None
    order = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], order)


def _read_layers(client: RegistryClient, manifest: Manifest, folder: Path) -> Half:
    config = json.loads(client.read_blob("library/python", manifest.data["config"]["digest"]))
    members: dict[str, tarfile.TarInfo] = {}
    machines: dict[str, int] = {}
    diff_ids = []
    for layer in manifest.data["layers"]:
        path = client.get_blob("library/python", layer["digest"], folder / layer["digest"][7:])
        with gzip.open(path) as raw:
            stream = _Hashing(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./").rstrip("/")
                    members[name] = member
                    if member.isfile() and member.size >= 20:
                        machine = _elf_machine(tar.extractfile(member).read(20))
                        if machine is not None:
                            machines[name] = machine
            while stream.read(1 << 20):  # the tar's end padding counts too
                pass
        diff_ids.append(f"sha256:{stream.sha256.hexdigest()}")
        path.unlink()
    return Half(manifest, config, members, machines, diff_ids)


@pytest.fixture(scope="module")
def client(registry) -> RegistryClient:
    with RegistryClient(registry, credentials=None) as client:
        yield client


@pytest.fixture(scope="module", params=TAGS)
def index(request, client) -> tuple[str, Manifest]:
    from cais.errors import NotInRegistry

    tag = request.param
    try:
        return tag, client.get_manifest("library/python", tag)
    except NotInRegistry:
        unavailable(f"no index at {REGISTRY}/library/python:{tag} (run scripts/test-infra)")


@pytest.fixture(scope="module")
def halves(index, client, tmp_path_factory) -> dict[str, Half]:
    tag, _ = index
    folder = tmp_path_factory.mktemp(f"blobs-{tag}")
    return {
        arch: _read_layers(
            client, client.get_manifest("library/python", tag, platform=platform), folder
        )
        for arch, platform in PLATFORMS.items()
    }


def test_the_index_lists_amd64_and_arm64_v8(index):
    _, manifest = index
    assert manifest.is_index, manifest.media_type
    platforms = sorted(
        "/".join(filter(None, (p["os"], p["architecture"], p.get("variant"))))
        for p in (entry["platform"] for entry in manifest.data["manifests"])
    )
    assert platforms == ["linux/amd64", "linux/arm64/v8"]


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_each_config_names_the_diff_ids_of_its_layers(halves, arch):
    assert halves[arch].diff_ids == halves[arch].config["rootfs"]["diff_ids"]


def test_each_config_names_its_platform(halves):
    assert (halves["amd64"].config["os"], halves["amd64"].config["architecture"]) == (
        "linux",
        "amd64",
    )
    arm64 = halves["arm64"].config
    assert (arm64["os"], arm64["architecture"], arm64["variant"]) == ("linux", "arm64", "v8")


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_every_elf_file_is_of_the_platform(index, halves, arch):
    tag, _ = index
    python = f"usr/bin/python{tag.removesuffix('-slim')}"
    half = halves[arch]
    assert half.machines.get(python) == MACHINES[arch], f"{python}: {half.machines.get(python)}"
    foreign = {path: m for path, m in half.machines.items() if m != MACHINES[arch]}
    assert not foreign, f"{arch} layer holds ELF files of another machine: {sorted(foreign)[:5]}"
    shared = [p for p in half.machines if ".so" in p.rsplit("/", 1)[-1]]
    assert len(shared) > 20, shared


@pytest.mark.engine
def test_amd64_half_is_the_engine_image(index, halves, client, engine):
    tag, _ = index
    image = engine.images.get(f"python:{tag}")
    assert halves["amd64"].config["rootfs"]["diff_ids"] == image.attrs["RootFS"]["Layers"]
    assert halves["amd64"].manifest.data["config"]["digest"] == image.id
    assert halves["amd64"].manifest.digest == client.manifest_digest("python", tag)


def test_arm64_half_has_the_amd64_layout_and_config(halves):
    amd64, arm64 = halves["amd64"], halves["arm64"]
    for key in ("Env", "Cmd"):
        assert arm64.config["config"][key] == amd64.config["config"][key], key

    def local(half: Half) -> dict[str, str]:
        # the venv at /usr/local: python links, pip, site-packages, pyvenv.cfg
        return {n: m.linkname for n, m in half.members.items() if n.startswith("usr/local/")}

    assert local(arm64) == local(amd64)
    assert arm64.members["usr/local/bin/python3"].linkname == "/usr/bin/python3"
    for name in ("etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "bin", "proc"):
        assert name in arm64.members, name
    assert arm64.members["bin"].issym() and arm64.members["proc"].isdir()
    assert "etc/ld.so.cache" not in arm64.members  # made by running ldconfig, arch-specific


def test_the_base_registry_setting_finds_the_stand_ins(registry, monkeypatch):
    from cais.bases import available_pythons

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # the engine holds none
    monkeypatch.setenv("CAIS_BASE_REGISTRY", registry)
    bases = available_pythons(["3.12", "3.11", "3.9"])
    assert bases.pythons == ("3.11", "3.9")
    assert f"`{registry}`" in bases.asked
