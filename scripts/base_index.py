#!/usr/bin/python3
"""Serve a stand-in base image as Docker Hub does: a manifest list with amd64 and arm64/v8.

    base_index.py REGISTRY SOURCE TARGET TAG ARM64_ENV

The amd64 image is the one the engine pushed to REGISTRY/SOURCE:TAG; its manifest and blobs are
put unchanged into TARGET (blobs mounted, not copied). The arm64 image is one gzip layer (a
root made by `debootstrap --foreign`) described by ARM64_ENV (LAYER, DIFF_ID, CREATED, SUITE),
with the amd64 image's runtime config. The list goes to REGISTRY/TARGET:TAG last, after all it
names. Nothing is sent when the tag already holds the list this would make (same digest).

Run by scripts/test-infra before the project's environment exists, so it needs only Python's
standard library; the registry is a plain-HTTP loopback one without auth.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Fields of a config that describe how `docker import` made it, not what the image runs.
BUILD_FIELDS = ("container", "container_config", "docker_version", "comment", "author")


class Registry:
    def __init__(self, host: str) -> None:
        self.base = f"http://{host}/v2"
        # straight to the loopback registry, whatever HTTP_PROXY says
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method, path, *, data=None, headers=None, ok=(200,)):
        url = path if path.startswith("http") else f"{self.base}/{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            response = self.opener.open(req, timeout=300)
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return exc
            body = exc.read(500).decode(errors="replace")
            sys.exit(f"base_index: {method} {url} answered {exc.code}: {body}")
        if response.getcode() not in ok:
            sys.exit(f"base_index: {method} {url} answered {response.getcode()}")
        return response

    def manifest(self, repo: str, ref: str, media_type: str) -> bytes:
        with self.request("GET", f"{repo}/manifests/{ref}", headers={"Accept": media_type}) as r:
            content = r.read()
        if json.loads(content).get("mediaType") != media_type:
            sys.exit(f"base_index: {repo}:{ref} is not a {media_type}")
        return content

    def digest_of(self, repo: str, ref: str) -> str | None:
        accept = f"{DOCKER_LIST}, {DOCKER_MANIFEST}"
        response = self.request(
            "HEAD", f"{repo}/manifests/{ref}", headers={"Accept": accept}, ok=(200, 404)
        )
        if response.getcode() != 200:
            return None
        return response.headers.get("Docker-Content-Digest")

    def blob(self, repo: str, digest: str) -> bytes:
        with self.request("GET", f"{repo}/blobs/{digest}") as response:
            content = response.read()
        if sha256(content) != digest:
            sys.exit(f"base_index: the blob {repo}@{digest} does not match its digest")
        return content

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.request("HEAD", f"{repo}/blobs/{digest}", ok=(200, 404)).getcode() == 200

    def mount(self, repo: str, digest: str, source: str) -> None:
        if self.has_blob(repo, digest):
            return
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.request("POST", f"{repo}/blobs/uploads/?{query}", ok=(201,))
        response.close()

    def upload(self, repo: str, digest: str, body, size: int) -> None:
        """Upload a blob (bytes or an open file) in one PUT, unless the repository has it."""
        if self.has_blob(repo, digest):
            return
        started = self.request("POST", f"{repo}/blobs/uploads/", ok=(202,))
        location = urllib.parse.urljoin(started.url, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={urllib.parse.quote(digest)}",
            data=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            ok=(201,),
        ).close()

    def put_manifest(self, repo: str, ref: str, content: bytes, media_type: str) -> None:
        self.request(
            "PUT",
            f"{repo}/manifests/{ref}",
            data=content,
            headers={"Content-Type": media_type},
            ok=(201,),
        ).close()


def sha256(content: bytes) -> str:
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def read_env(path: str) -> dict[str, str]:
    with open(path) as stream:
        pairs = (line.rstrip("\n").partition("=") for line in stream if "=" in line)
        return {key: value for key, _, value in pairs}


def descriptor(media_type: str, content: bytes) -> dict:
    return {"mediaType": media_type, "size": len(content), "digest": sha256(content)}


def arm64_config(amd64: dict, env: dict[str, str]) -> bytes:
    config = {key: value for key, value in amd64.items() if key not in BUILD_FIELDS}
    config.update(
        architecture="arm64",
        variant="v8",
        os="linux",
        created=env["CREATED"],
        rootfs={"type": "layers", "diff_ids": [env["DIFF_ID"]]},
        history=[
            {
                "created": env["CREATED"],
                "created_by": f"debootstrap --foreign --arch arm64 --variant=minbase {env['SUITE']}",
                "comment": "cais test-infra stand-in (arm64 half)",
            }
        ],
    )
    return canonical(config)


def main(host: str, source: str, target: str, tag: str, env_path: str) -> None:
    registry = Registry(host)
    env = read_env(env_path)
    amd64_manifest = registry.manifest(source, tag, DOCKER_MANIFEST)
    amd64 = json.loads(amd64_manifest)
    amd64_config = json.loads(registry.blob(source, amd64["config"]["digest"]))
    if amd64_config.get("architecture") != "amd64":
        sys.exit(f"base_index: {host}/{source}:{tag} is not an amd64 image")

    config = arm64_config(amd64_config, env)
    layer_size = os.path.getsize(env["LAYER"])
    arm64_manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, config),
            "layers": [
                {"mediaType": DOCKER_LAYER_GZIP, "size": layer_size, "digest": env["LAYER_DIGEST"]}
            ],
        }
    )
    listing = canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                {
                    **descriptor(DOCKER_MANIFEST, amd64_manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    **descriptor(DOCKER_MANIFEST, arm64_manifest),
                    "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
                },
            ],
        }
    )
    name = f"{host}/{target}:{tag}"
    if registry.digest_of(target, tag) == sha256(listing):
        print(f"{name} up to date ({sha256(listing)})")
        return

    for blob in (amd64["config"], *amd64["layers"]):
        registry.mount(target, blob["digest"], source)
    registry.put_manifest(target, sha256(amd64_manifest), amd64_manifest, DOCKER_MANIFEST)
    registry.upload(target, sha256(config), config, len(config))
    with open(env["LAYER"], "rb") as layer:
        registry.upload(target, env["LAYER_DIGEST"], layer, layer_size)
    registry.put_manifest(target, sha256(arm64_manifest), arm64_manifest, DOCKER_MANIFEST)
    registry.put_manifest(target, tag, listing, DOCKER_LIST)
    print(f"pushed {name} ({sha256(listing)}: linux/amd64, linux/arm64/v8)")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__.split("\n\n")[1])
    main(*sys.argv[1:])
