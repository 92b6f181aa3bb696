"""cais.engine.images with a fake Docker client: push/pull progress and registry errors."""

from __future__ import annotations

import docker.errors
import pytest
import requests

from cais.engine.images import (
    _registry_error,
    image_exists,
    list_images,
    pull,
    push,
    remove_image,
    tag_image,
)
from cais.errors import (
    AuthError,
    EngineError,
    ImageNotFound,
    NotInRegistry,
    PlanError,
    RegistryError,
)
from cais.registry import credentials
from cais.registry.reference import parse_reference


def not_found(text: str) -> docker.errors.ImageNotFound:
    response = requests.Response()
    response.status_code = 404
    return docker.errors.ImageNotFound(text, response, explanation=text)


class FakeImage:
    def __init__(self, image_id="sha256:" + "c" * 64, tags=("hello:1",)) -> None:
        self.id = image_id
        self.short_id = image_id[:19]
        self.tags = list(tags)
        self.attrs = {"Size": 12_345_678, "Created": "2024-05-01T12:00:00.123456789Z"}


class FakeClient:
    def __init__(self, *, images=None, messages=(), pull_error=None) -> None:
        self.known = images or {}
        self.messages = list(messages)
        self.pull_error = pull_error
        self.calls: list[tuple] = []
        self.api = self
        self.images = self

    # images.*
    def get(self, reference):
        self.calls.append(("get", reference))
        if reference not in self.known:
            raise not_found(f"No such image: {reference}")
        return self.known[reference]

    def __call__(self, name=None):  # api.images: the engine's summaries
        self.calls.append(("list", name))
        return [
            {
                "Id": image.id,
                "RepoTags": image.tags or ["<none>:<none>"],
                "Size": image.attrs["Size"],
                "Created": 1714564800,  # image.attrs["Created"], in seconds
            }
            for image in self.known.values()
        ]

    def remove(self, reference, force=False):
        self.calls.append(("remove", reference, force))
        if reference not in self.known:
            raise not_found(f"No such image: {reference}")

    # api.*
    def push(self, repository, tag=None, stream=False, decode=False):
        self.calls.append(("push", repository, tag))
        return iter(self.messages)

    def pull(self, repository, tag=None, stream=False, decode=False):
        self.calls.append(("pull", repository, tag))
        if self.pull_error:
            raise self.pull_error
        return iter(self.messages)


def recorder():
    seen = []
    return seen, lambda layer, status, current, total: seen.append((layer, status, current, total))


def test_push_reports_layers_and_returns_the_digest():
    digest = "sha256:" + "d" * 64
    client = FakeClient(
        images={"127.0.0.1:5000/team/hello:1": FakeImage()},
        messages=[
            {"status": "The push refers to repository [127.0.0.1:5000/team/hello]"},
            {"id": "aaa", "status": "Preparing", "progressDetail": {}},
            {"id": "aaa", "status": "Pushing", "progressDetail": {"current": 512, "total": 1024}},
            {"id": "aaa", "status": "Pushed", "progressDetail": {}},
            {"status": "1: digest: ... size: 1234"},
            {"progressDetail": {}, "aux": {"Tag": "1", "Digest": digest, "Size": 1234}},
        ],
    )
    seen, progress = recorder()
    assert push(client, "127.0.0.1:5000/team/hello:1", progress) == digest
    assert ("push", "127.0.0.1:5000/team/hello", "1") in client.calls
    assert seen == [
        ("aaa", "Preparing", 0, 0),
        ("aaa", "Pushing", 512, 1024),
        ("aaa", "Pushed", 0, 0),
    ]


def test_push_of_a_missing_image_never_talks_to_the_registry():
    client = FakeClient()
    with pytest.raises(ImageNotFound) as caught:
        push(client, "hello:1")
    assert caught.value.message == "The image `hello:1` does not exist in the Docker Engine"
    assert not any(call[0] == "push" for call in client.calls)


def test_push_refused():
    client = FakeClient(
        images={"hello:1": FakeImage()},
        messages=[
            {
                "error": "denied: requested access to the resource is denied",
                "errorDetail": {"message": "denied: requested access to the resource is denied"},
            }
        ],
    )
    with pytest.raises(AuthError) as caught:
        push(client, "hello:1")
    assert caught.value.message == "The registry `Docker Hub` needs a login to push to `hello:1`"
    assert caught.value.hint == "log in with `cais login`, then try again"


def test_pull_returns_the_image_id():
    image = FakeImage()
    client = FakeClient(
        images={"127.0.0.1:5000/hello:2": image},
        messages=[
            {"id": "2", "status": "Pulling from hello"},
            {"id": "bbb", "status": "Downloading", "progressDetail": {"current": 10, "total": 100}},
            {"status": "Digest: sha256:..."},
        ],
    )
    seen, progress = recorder()
    assert pull(client, "127.0.0.1:5000/hello:2", progress) == image.id
    assert ("pull", "127.0.0.1:5000/hello", "2") in client.calls
    assert seen == [("2", "Pulling from hello", 0, 0), ("bbb", "Downloading", 10, 100)]


def test_pull_by_digest():
    digest = "sha256:" + "e" * 64
    client = FakeClient(images={f"hello@{digest}": FakeImage()})
    pull(client, f"hello@{digest}")
    assert ("pull", "hello", digest) in client.calls


def test_pull_of_a_missing_image():
    error = docker.errors.APIError(
        "x", explanation="manifest for hello:9 not found: manifest unknown"
    )
    with pytest.raises(NotInRegistry) as caught:
        pull(FakeClient(pull_error=error), "hello:9")
    assert caught.value.message == "`hello:9` does not exist in the registry `Docker Hub`"


@pytest.mark.parametrize(
    ("text", "cls", "temporary"),
    [
        ("unauthorized: authentication required", AuthError, False),
        ("no basic auth credentials", AuthError, False),
        ("manifest unknown", NotInRegistry, False),
        ("manifest for x:1 not found: manifest unknown", NotInRegistry, False),
        (
            'Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused',
            RegistryError,
            True,
        ),
        ("Get https://reg/v2/: net/http: TLS handshake timeout", RegistryError, True),
        ("something odd", RegistryError, False),
    ],
)
def test_registry_errors_are_registry_errors(text, cls, temporary):
    ref = parse_reference("127.0.0.1:5000/x:1")
    error = _registry_error(ref, {"error": text}, "push")
    assert isinstance(error, cls)
    assert isinstance(error, RegistryError)
    assert error.temporary is temporary
    if cls is AuthError:
        assert "`cais login 127.0.0.1:5000`" in error.hint
        assert error.message == (
            "The registry `127.0.0.1:5000` needs a login to push to `127.0.0.1:5000/x:1`"
        )
    elif cls is NotInRegistry:
        assert (
            error.message == "`127.0.0.1:5000/x:1` does not exist in the registry `127.0.0.1:5000`"
        )
    elif temporary:
        cause = text.rpartition(": ")[2]  # `connection refused`, not the engine's `Get "…"`
        assert error.message == f"The registry `127.0.0.1:5000` does not answer: {cause}"
    else:
        assert error.message == f"The push of `127.0.0.1:5000/x:1` failed: {text}"


@pytest.mark.parametrize("verb", ["pull", "push"])
@pytest.mark.parametrize(
    "text",
    [
        'Head "http://127.0.0.1:5001/v2/team/app/manifests/1": no basic auth credentials',
        "unauthorized: authentication required",
        'Get "http://127.0.0.1:5001/v2/": unauthorized: authentication required',
        "denied: requested access to the resource is denied",
    ],
    ids=["no-credentials", "unauthorized", "unauthorized-get", "denied"],
)
def test_a_refusal_says_who_was_refused_never_the_engines_words(text, verb):
    ref = parse_reference("127.0.0.1:5001/team/app:1")
    action = "push to" if verb == "push" else "pull"

    anonymous = _registry_error(ref, {"error": text}, verb)
    assert (anonymous.message, anonymous.hint) == (
        f"The registry `127.0.0.1:5001` needs a login to {action} `127.0.0.1:5001/team/app:1`",
        "log in with `cais login 127.0.0.1:5001`, then try again",
    )

    credentials.store("127.0.0.1:5001", credentials.Credentials("ana", "secret"))
    known = _registry_error(ref, {"error": text}, verb)
    assert isinstance(known, AuthError)
    if "denied" in text:  # a good login that may not do this
        assert known.message == (
            f"The registry `127.0.0.1:5001` refused to let `ana` {action} "
            "`127.0.0.1:5001/team/app:1`"
        )
        assert known.hint.startswith(f"check that this account may {verb} it")
    else:
        assert (
            known.message
            == "The registry `127.0.0.1:5001` refused the username or password for `ana`"
        )
        assert known.hint.startswith("log in again with `cais login 127.0.0.1:5001`")
    for error in (anonymous, known):
        assert "http" not in error.message and "secret" not in f"{error.message}{error.hint}"


def test_docker_hubs_not_found_or_private_is_both():
    text = (
        "pull access denied for nosuch/app, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied"
    )
    error = _registry_error(parse_reference("nosuch/app:1"), {"error": text}, "pull")
    assert isinstance(error, NotInRegistry)
    assert (
        error.message
        == "`nosuch/app:1` does not exist in the registry `Docker Hub`, or needs a login"
    )
    assert error.hint == "check the name and tag; a private image needs `cais login` first"


def test_registry_not_found_message():
    error = _registry_error(parse_reference("hello:9"), {"error": "manifest unknown"}, "pull")
    assert error.message == "`hello:9` does not exist in the registry `Docker Hub`"
    assert "check the name and tag" in error.hint


def test_list_images():
    client = FakeClient(images={"hello:1": FakeImage(tags=("hello:1", "hello:latest"))})
    (summary,) = list_images(client, "hello")
    assert summary.id == "c" * 12
    assert summary.tags == ("hello:1", "hello:latest")
    assert summary.size == 12_345_678
    assert summary.created == "2024-05-01 12:00:00"
    assert ("list", "hello") in client.calls


def test_list_images_asks_once_so_an_image_removed_meanwhile_is_no_error():
    client = FakeClient(images={"hello:1": FakeImage(tags=())})
    client.get = lambda reference: (_ for _ in ()).throw(not_found("No such image"))
    (summary,) = list_images(client, "hello")
    assert summary.tags == ()
    assert client.calls == [("list", "hello")]


def test_image_exists():
    client = FakeClient(images={"hello:1": FakeImage()})
    assert image_exists(client, "hello:1") is True
    assert image_exists(client, "hello:2") is False


def test_remove_image():
    client = FakeClient(images={"hello:1": FakeImage()})
    remove_image(client, "hello:1", force=True)
    assert ("remove", "hello:1", True) in client.calls
    with pytest.raises(ImageNotFound, match="`nope:1`"):
        remove_image(client, "nope:1")
    assert issubclass(ImageNotFound, EngineError)


class FakeContainer:
    def __init__(self, name, status):
        self.name, self.status = name, status


class InUse(FakeClient):
    """An engine where every image is used by `users`."""

    def __init__(self, users):
        super().__init__(images={"hello:1": FakeImage()})
        self.users = users
        self.containers = self

    def remove(self, reference, force=False):
        self.calls.append(("remove", reference, force))
        response = requests.Response()
        response.status_code = 409
        raise docker.errors.APIError("conflict", response, explanation="conflict: unable to remove")

    def list(self, name=None, all=False, filters=None, ignore_removed=False):
        if filters is None:
            return super().list(name)
        self.calls.append(("containers", filters))
        return self.users


@pytest.mark.parametrize(
    ("users", "message", "hint"),
    [
        (
            [FakeContainer("api", "running")],
            "The image `hello:1` is used by the container `api`",
            "stop and remove it first with `cais rm -f api`",
        ),
        (
            [FakeContainer("job", "exited")],
            "The image `hello:1` is used by the container `job`",
            "remove it first with `cais rm job`, or untag the image anyway with "
            "`cais rmi --force hello:1`",
        ),
        ([], "The image `hello:1` cannot be removed: conflict: unable to remove", None),
    ],
    ids=["running", "stopped", "unknown"],
)
def test_rmi_of_an_image_in_use(users, message, hint):
    client = InUse(users)
    with pytest.raises(EngineError) as caught:
        remove_image(client, "hello:1")
    assert (caught.value.message, caught.value.hint) == (message, hint)
    assert ("containers", {"ancestor": "hello:1"}) in client.calls


class Taggable(FakeImage):
    def __init__(self):
        super().__init__()
        self.tagged = []

    def tag(self, repository, tag=None):
        self.tagged.append((repository, tag))
        return True


def test_tag_image():
    image = Taggable()
    client = FakeClient(images={"hello:1": image, "c" * 12: image})
    assert str(tag_image(client, "hello:1", "127.0.0.1:5000/team/hello:2")) == (
        "127.0.0.1:5000/team/hello:2"
    )
    assert str(tag_image(client, "c" * 12, "hello")) == "hello:latest"
    assert image.tagged == [("127.0.0.1:5000/team/hello", "2"), ("hello", "latest")]
    with pytest.raises(EngineError, match="names a digest, which is not a tag"):
        tag_image(client, "hello:1", "hello@sha256:" + "a" * 64)
    with pytest.raises(ImageNotFound, match="`nope:1`"):
        tag_image(client, "nope:1", "hello:3")
    for source, target in (("Hello:1", "hello:2"), ("hello:1", "Hello:2")):
        with pytest.raises(PlanError, match="has capital letters"):
            tag_image(client, source, target)
    assert len(image.tagged) == 2


def test_rmi_refuses_a_malformed_name_before_the_engine():
    client = FakeClient(images={"hello:1": FakeImage()})
    with pytest.raises(PlanError, match="has capital letters"):
        remove_image(client, "Hello:1")
    assert not [call for call in client.calls if call[0] == "remove"]
