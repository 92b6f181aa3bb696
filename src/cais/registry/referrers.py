"""Artifacts attached to an image in a registry, as OCI 1.1 referrers.

`attach` pushes an artifact's blobs, then its manifest by digest. A registry with the
referrers API lists it from then on; one without it (CNCF Distribution 2.8, many mirrors)
gets the spec's fallback: an index of referrers under the tag `sha256-<hex>` of the subject,
read, extended and put back, so artifacts attached before stay listed. `referrers` reads
either way.
"""

from __future__ import annotations

import io
import json

from cais.errors import NotInRegistry, RegistryError
from cais.image.image import canonical_json
from cais.image.media import MediaType
from cais.image.referrer import EMPTY_CONFIG, Referrer
from cais.registry.client import RegistryClient

__all__ = ["attach", "fallback_tag", "referrers"]


def fallback_tag(digest: str) -> str:
    """The tag that holds the referrers of `digest` where the registry has no referrers API."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}-{value}"[:128]  # the longest tag the distribution spec allows


def attach(client: RegistryClient, repository: str, referrer: Referrer) -> str:
    """Push `referrer` into `repository` beside its subject; returns the artifact's digest.

    Pushing it again changes nothing: blobs are skipped, the manifest is the same, and an
    entry already in the fallback index is not added twice.
    """
    blobs = [
        (referrer.config_descriptor(), EMPTY_CONFIG),
        (referrer.content_descriptor(), referrer.content),
    ]
    for descriptor, data in blobs:
        client.push_blob(
            repository, descriptor.digest, descriptor.size, lambda data=data: io.BytesIO(data)
        )
    client.put_manifest(
        repository, referrer.digest, referrer.manifest_json, MediaType.OCI_MANIFEST.value
    )
    if client.referrers(repository, referrer.subject.digest) is None:
        _add_to_fallback(client, repository, referrer)
    return referrer.digest


def referrers(
    client: RegistryClient,
    repository: str,
    digest: str,
    *,
    artifact_type: MediaType | None = None,
) -> list[dict]:
    """The index entries of the artifacts about `digest`, of `artifact_type` when given."""
    entries = client.referrers(repository, digest)
    if entries is None:
        entries = _fallback_entries(client, repository, digest)
    return [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and (artifact_type is None or entry.get("artifactType") == artifact_type.value)
    ]


def _fallback_entries(client: RegistryClient, repository: str, digest: str) -> list[dict]:
    tag = fallback_tag(digest)
    try:
        manifest = client.get_manifest(repository, tag)
    except NotInRegistry:
        return []
    if manifest.media_type != MediaType.OCI_INDEX.value:
        raise RegistryError(
            f"The tag `{tag}` of `{client.registry}/{repository}` holds a `{manifest.media_type}`,"
            " not the index of referrers that tag names by convention",
            hint=f"remove or rename the tag `{tag}`, then push again",
        )
    try:
        entries = json.loads(manifest.content).get("manifests") or []
    except (ValueError, AttributeError):
        entries = None
    if not isinstance(entries, list):
        raise RegistryError(
            f"The index of referrers under the tag `{tag}` of `{client.registry}/{repository}` "
            "cannot be read",
            hint=f"remove the tag `{tag}`, then push again",
        )
    return entries


def _add_to_fallback(client: RegistryClient, repository: str, referrer: Referrer) -> None:
    # Read, extend, put back: Distribution has no conditional PUT, so two pushes racing on one
    # subject may lose an entry; the artifact itself stays stored by its digest.
    entries = _fallback_entries(client, repository, referrer.subject.digest)
    if any(isinstance(e, dict) and e.get("digest") == referrer.digest for e in entries):
        return
    index = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_INDEX.value,
        "manifests": [*entries, referrer.index_entry()],
    }
    client.put_manifest(
        repository,
        fallback_tag(referrer.subject.digest),
        canonical_json(index),
        MediaType.OCI_INDEX.value,
    )
