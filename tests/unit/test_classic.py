"""cais.builders.classic.ClassicBuilder with a fake Docker client (no engine)."""

from __future__ import annotations

import io
import tarfile

import docker.errors
import pytest

from cais.builders.base import BuildRequest
from cais.builders.classic import ClassicBuilder
from cais.builders.dockerfile import (
    DEFAULT_DOCKERIGNORE,
    SECRETS_DIR,
    SecretsMode,
    render_dockerfile,
)
from cais.builders.pip_settings import PIP_CA_SECRET, PIP_CONF_SECRET, PipSettings
from cais.errors import BuildError, EngineError
from cais.plan import plan_project
from cais.project import load_project
from tests.support import RecordingProgress

IMAGE_ID = "sha256:" + "ab" * 32


class FakeImage:
    def __init__(self) -> None:
        self.tags: list[tuple[str, str]] = []

    def tag(self, repository: str, tag: str) -> bool:
        self.tags.append((repository, tag))
        return True


class FakeClient:
    """Just enough of docker.DockerClient: api.build and images.get."""

    def __init__(self, chunks=None, error: Exception | None = None) -> None:
        self.chunks = chunks if chunks is not None else []
        self.error = error
        self.build_kwargs: dict = {}
        self.files: dict[str, bytes] = {}
        self.image = FakeImage()
        self.api = self
        self.images = self

    def build(self, **kwargs):
        self.build_kwargs = kwargs
        with tarfile.open(fileobj=io.BytesIO(kwargs["fileobj"].read())) as tar:
            self.files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        if self.error:
            raise self.error
        return iter(self.chunks)

    def get(self, image_id: str) -> FakeImage:
        assert image_id == IMAGE_ID
        return self.image


SUCCESS = [
    {"stream": "Step 1/3 : FROM python:3.11-slim\n"},
    {"stream": " ---> 1234567890ab\n"},
    {"stream": "Step 2/3 : RUN pip install -r requirements.txt\n"},
    {"stream": " ---> Running in 0987654321\n"},
    {"stream": "Collecting rich\nSuccessfully installed rich-13.7.1\n"},
    {"stream": "Step 3/3 : COPY . .\n"},
    {"aux": {"ID": IMAGE_ID}},
    {"stream": "Successfully built abababababab\n"},
]


@pytest.fixture
def project(tmp_path, write):
    return write(
        tmp_path / "project",
        {
            "script.py": "print('hi')\n",
            "requirements.txt": "rich\n",
            ".git/HEAD": "ref: refs/heads/main\n",
            ".venv/bin/python": "",
            ".env": "TOKEN=x\n",
        },
    )


def request_for(context, **changes) -> BuildRequest:
    fields = dict(
        context=context,
        tags=("hello:1.0", "127.0.0.1:5000/team/hello:1.0"),
        dockerfile_text="FROM python:3.11-slim\nCOPY . .\n",
        default_ignore=DEFAULT_DOCKERIGNORE,
    )
    fields.update(changes)
    return BuildRequest(**fields)


def test_successful_build(project):
    client = FakeClient(SUCCESS)
    progress = RecordingProgress()
    result = ClassicBuilder(client).build(
        request_for(project, platform="linux/amd64", build_args={"A": "1"}, no_cache=True), progress
    )
    assert result.image_id == IMAGE_ID
    assert result.tags == ("hello:1.0", "127.0.0.1:5000/team/hello:1.0")
    assert result.builder == "classic"
    assert progress.steps == [
        "[1/3] FROM python:3.11-slim",
        "[2/3] RUN pip install -r requirements.txt",
        "[3/3] COPY . .",
    ]
    # " ---> …" lines are the classic builder's bookkeeping, not the step's output.
    assert progress.lines == [
        "Collecting rich",
        "Successfully installed rich-13.7.1",
        "Successfully built abababababab",
    ]
    assert client.image.tags == [
        ("127.0.0.1:5000/team/hello", "1.0")
    ]  # the first tag comes with the build
    kwargs = client.build_kwargs
    assert kwargs["custom_context"] is True
    assert kwargs["dockerfile"] == ".cais.Dockerfile"
    assert kwargs["tag"] == "hello:1.0"
    assert kwargs["platform"] == "linux/amd64"
    assert kwargs["buildargs"] == {"A": "1"}
    assert kwargs["nocache"] is True
    assert kwargs["decode"] is True


def test_context_sent_to_the_engine(project):
    client = FakeClient(SUCCESS)
    ClassicBuilder(client).build(request_for(project), RecordingProgress())
    files = client.files
    assert files[".cais.Dockerfile"] == b"FROM python:3.11-slim\nCOPY . .\n"
    assert files["script.py"] == b"print('hi')\n"
    assert "requirements.txt" in files
    assert not any(name.startswith((".git/", ".venv/")) or name == ".env" for name in files)
    assert not any(name.startswith(SECRETS_DIR) for name in files)
    ignore = files[".dockerignore"].decode().splitlines()
    assert ".cais.Dockerfile" in ignore and ".dockerignore" in ignore
    assert ".git" in ignore


def test_projects_own_dockerfile(project):
    (project / "docker").mkdir()
    (project / "docker" / "Dockerfile").write_text("FROM scratch\n")
    client = FakeClient(SUCCESS)
    request = request_for(
        project,
        dockerfile_text=None,
        dockerfile=project / "docker" / "Dockerfile",
        pip=PipSettings(index_url="https://i.example/simple"),
    )
    ClassicBuilder(client).build(request, RecordingProgress())
    assert client.build_kwargs["dockerfile"] == "docker/Dockerfile"
    assert client.files["docker/Dockerfile"] == b"FROM scratch\n"
    assert not any(name.startswith(SECRETS_DIR) for name in client.files)  # only for cais's own


def test_pip_settings_reach_only_the_throw_away_stage(project, make_cert):
    (project / "cais.yaml").write_text('python: "3.11"\n')
    plan = plan_project(load_project(project))
    dockerfile = render_dockerfile(plan, secrets=SecretsMode.STAGE)
    pip = PipSettings(
        ca_bundle=make_cert("proxy"),
        ca_sources=("p.pem",),
        index_url="https://user:tok@i.example/simple",
    )
    client = FakeClient(SUCCESS)
    ClassicBuilder(client).build(
        request_for(project, dockerfile_text=dockerfile, pip=pip), RecordingProgress()
    )
    files = client.files
    assert files[f"{SECRETS_DIR}/{PIP_CONF_SECRET}"].decode() == pip.pip_conf(
        f"/run/secrets/{PIP_CA_SECRET}"
    )
    assert files[f"{SECRETS_DIR}/{PIP_CA_SECRET}"] == pip.ca_bundle
    ignore = files[".dockerignore"].decode().splitlines()
    assert f"!{SECRETS_DIR}" in ignore
    # The context holds the secrets, so the image's own stage must take nothing from it directly.
    final_stage = dockerfile[dockerfile.rindex("\nFROM ") :]
    context_copies = [
        line
        for line in final_stage.splitlines()
        if line.startswith(("COPY ", "ADD ")) and "--from=" not in line
    ]
    assert context_copies == []


def test_failed_step(project):
    chunks = [
        {"stream": "Step 1/2 : FROM python:3.11-slim\n"},
        {"stream": "Step 2/2 : RUN pip install nopkg\n"},
        {"stream": "ERROR: No matching distribution found for nopkg\n"},
        {
            "error": "The command '/bin/sh -c pip install nopkg' returned a non-zero code: 1",
            "errorDetail": {
                "code": 1,
                "message": "The command '/bin/sh -c pip install nopkg' returned a non-zero code: 1",
            },
        },
    ]
    with pytest.raises(BuildError) as caught:
        ClassicBuilder(FakeClient(chunks)).build(request_for(project), RecordingProgress())
    error = caught.value
    assert error.step == "[2/2] RUN pip install nopkg"
    assert error.message == "The package `nopkg` was not found on the package index"


def test_error_before_any_step(project):
    with pytest.raises(BuildError) as caught:
        ClassicBuilder(FakeClient([{"error": "dockerfile parse error line 3"}])).build(
            request_for(project), RecordingProgress()
        )
    assert caught.value.step is None
    assert caught.value.message == "The build failed"
    assert caught.value.log_tail == ["dockerfile parse error line 3"]


def test_build_without_an_image(project):
    with pytest.raises(BuildError, match="ended without an image"):
        ClassicBuilder(FakeClient([{"stream": "Step 1/1 : FROM scratch\n"}])).build(
            request_for(project), RecordingProgress()
        )


def test_engine_refusal_becomes_an_engine_error(project):
    client = FakeClient(error=docker.errors.APIError("x", explanation="no space left on device"))
    with pytest.raises(EngineError, match="no space left on device"):
        ClassicBuilder(client).build(request_for(project), RecordingProgress())
