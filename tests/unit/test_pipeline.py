"""`cais pipeline github|gitlab`: the files, checked by the CI providers' own schemas (vendored
by check-jsonschema), read back as YAML for what they do, and the command's bad input."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cais import __version__
from cais.cli import app
from tests.support import assert_one_error, text_model, unavailable

SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}
FILES = {"github": ".github/workflows/cais.yml", "gitlab": ".gitlab-ci.yml"}
OPTIONS = [
    [],
    ["--registry", "ghcr.io/acme"],
    ["--registry", "127.0.0.1:5000/ml", "--deploy", "compose-ssh"],
    ["--deploy", "kubectl"],
    ["--registry", "docker.io/someone", "--deploy", "kubectl"],
]


def _cais(*args: str):
    return CliRunner().invoke(app, list(args))


def _project(tmp_path: Path, template: str, name: str = "shop") -> Path:
    folder = tmp_path / name
    done = _cais("init", str(folder), "--template", template)
    assert done.exit_code == 0, done.output
    return folder


def _bundle_folder(tmp_path: Path, monkeypatch) -> Path:
    """The folder a saved model lives in, as a repository would commit it."""
    import cais

    monkeypatch.setenv("CAIS_HOME", str(tmp_path / "home"))
    reference = cais.save_model(text_model(), "products", input_example=["livro"])
    name, version = reference.split(":")
    found = next((tmp_path / "home").rglob("cais-model.json")).parent
    assert found.name == version and name == "products"
    return found


@pytest.fixture(params=["script", "flask", "classifier", "model"])
def subject(request, tmp_path, monkeypatch) -> Path:
    if request.param == "model":
        return _bundle_folder(tmp_path, monkeypatch)
    return _project(tmp_path, request.param)


def _write(provider: str, folder: Path, *options: str) -> tuple[Path, dict]:
    output = folder.parent / f"{provider}-{len(list(folder.parent.glob('*.yml')))}.yml"
    done = _cais("pipeline", provider, str(folder), "-o", str(output), *options)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().endswith(output.name)
    return output, yaml.safe_load(output.read_text())


def _validate(provider: str, files: list[Path]) -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if checker is None:
        unavailable("check-jsonschema is not installed (pip install -e '.[test]')")
    checked = subprocess.run(
        [checker, "--builtin-schema", SCHEMAS[provider], *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_every_variant_is_valid_by_the_providers_schema(provider, subject):
    files = [_write(provider, subject, *options)[0] for options in OPTIONS]
    _validate(provider, files)


def test_the_schemas_refuse_a_broken_file(tmp_path):
    """The check can fail: a job with an unknown key and a workflow without `on`."""
    folder = _project(tmp_path, "script")
    gitlab, data = _write("gitlab", folder)
    data["build"]["privileged_runner"] = True
    gitlab.write_text(yaml.safe_dump(data))
    github, data = _write("github", folder)
    del data[True]  # `on:` (PyYAML reads YAML 1.1, where `on` is true)
    github.write_text(yaml.safe_dump(data))
    for provider, file in (("gitlab", gitlab), ("github", github)):
        with pytest.raises(AssertionError):
            _validate(provider, [file])


def _scripts(job: dict) -> list[str]:
    lines = [*job.get("before_script", []), *job.get("script", [])]
    lines += [step.get("run", "") for step in job.get("steps", [])]
    return [line for line in lines if line]


def _gitlab_jobs(data: dict) -> dict:
    return {k: v for k, v in data.items() if isinstance(v, dict) and "stage" in v}


@pytest.mark.parametrize("provider", ["github", "gitlab"])
@pytest.mark.parametrize("options", OPTIONS)
def test_no_docker_daemon_is_needed(provider, options, subject):
    """No dind service, no privileged runner, no docker command, no docker socket."""
    file, data = _write(provider, subject, *options)
    jobs = data["jobs"] if provider == "github" else _gitlab_jobs(data)
    for name, job in jobs.items():
        assert "services" not in job, name
        image = job.get("image") or job.get("container") or ""
        assert "docker" not in str(image), name
        for line in _scripts(job):
            assert not re.search(r"(^|[\s;&|])docker(-compose)?\s", line), line
    text = file.read_text()
    assert "privileged" not in text.replace("no privileged", "")
    assert "docker.sock" not in text.replace("no docker socket", "")
    assert "dind" not in text


def _build_script(provider: str, data: dict) -> str:
    if provider == "github":
        return "\n".join(_scripts(data["jobs"]["build"]))
    return "\n".join(data["build"]["script"])


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_tags_are_the_commit_and_on_the_default_branch_the_version_and_latest(provider, tmp_path):
    folder = _project(tmp_path, "flask")
    _, data = _write(provider, folder)
    script = _build_script(provider, data)
    sha = "${GITHUB_SHA::8}" if provider == "github" else "$CI_COMMIT_SHORT_SHA"
    assert f'TAGS="-t $IMAGE:{sha}"' in script
    default = (
        '"$GITHUB_REF" = "refs/heads/${{ github.event.repository.default_branch }}"'
        if provider == "github"
        else '"$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH"'
    )
    guarded = re.search(rf"if \[ {re.escape(default)} \]; then\s+TAGS=\"([^\"]+)\"", script)
    assert guarded and guarded.group(1) == "$TAGS -t $IMAGE:$VERSION -t $IMAGE:latest", script
    assert f'VERSION="$(cais pipeline version {folder.name})"' not in script  # relative, below
    assert "cais pipeline version ." in script
    assert re.search(r"cais build \. --builder oci \$TAGS --push", script)
    assert script.count("latest") == 1


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_cais_is_pinned_to_the_running_version(provider, subject):
    _, data = _write(provider, subject)
    variables = data["env"] if provider == "github" else data["variables"]
    assert variables["CAIS_PACKAGE"] == f"cais=={__version__}"


@pytest.mark.parametrize(
    ("options", "user", "password", "host", "image"),
    [
        (
            [],
            "${{ github.actor }}",
            "${{ secrets.GITHUB_TOKEN }}",
            "ghcr.io",
            "ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/shop",
        ),
        (
            ["--registry", "registry.example.com:5000/ml"],
            "${{ secrets.REGISTRY_USER }}",
            "${{ secrets.REGISTRY_PASSWORD }}",
            "registry.example.com:5000",
            "registry.example.com:5000/ml/shop",
        ),
    ],
)
def test_github_secrets_are_only_referenced(tmp_path, options, user, password, host, image):
    folder = _project(tmp_path, "script")
    file, data = _write("github", folder, *options)
    build = data["jobs"]["build"]
    login = next(s for s in build["steps"] if s.get("name") == "Log in to the registry")
    assert login["env"] == {"REGISTRY_USER": user, "REGISTRY_PASSWORD": password}
    assert login["run"] == (
        f'printenv REGISTRY_PASSWORD | cais login {host} -u "$REGISTRY_USER" --password-stdin'
    )
    assert f'IMAGE="{image}"' in _build_script("github", data)
    ghcr = {"packages": "write"} if host == "ghcr.io" else {}  # the token pushes there only
    assert build["permissions"] == {"contents": "read", **ghcr}
    assert data["permissions"] == {"contents": "read"}
    # A secret appears only inside `${{ secrets.X }}`, and only in `env:` blocks.
    for line in file.read_text().splitlines():
        if "secrets." in line and not line.lstrip().startswith("#"):
            assert re.fullmatch(r"\s+[A-Z_]+: \$\{\{ secrets\.[A-Z_]+ \}\}", line), line


@pytest.mark.parametrize(
    ("options", "login"),
    [
        (
            [],
            'printf "%s" "$CI_REGISTRY_PASSWORD" | cais login "$CI_REGISTRY" '
            '-u "$CI_REGISTRY_USER" --password-stdin',
        ),
        (
            ["--registry", "registry.example.com/ml"],
            'printf "%s" "$REGISTRY_PASSWORD" | cais login "registry.example.com" '
            '-u "$REGISTRY_USER" --password-stdin',
        ),
    ],
)
def test_gitlab_credentials_come_from_ci_variables(tmp_path, options, login):
    folder = _project(tmp_path, "script")
    file, data = _write("gitlab", folder, *options)
    assert login in data["build"]["script"]
    assert data["variables"]["DOCKER_CONFIG"].startswith("/tmp/")
    assert "PASSWORD" not in str(data["variables"])
    expected = "registry.example.com/ml/shop" if options else "$CI_REGISTRY_IMAGE/shop"
    assert data["variables"]["IMAGE"] == expected


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_the_proxy_ca_is_given_to_pip_and_cais_not_to_the_image(provider, tmp_path):
    folder = _project(tmp_path, "script")
    file, data = _write(provider, folder)
    if provider == "gitlab":
        assert data["default"]["before_script"] == [
            'if [ -n "${CAIS_CA_CERT:-}" ]; then export PIP_CERT="$CAIS_CA_CERT"; fi'
        ]
        assert "type File" in file.read_text()
    else:
        step = data["jobs"]["build"]["steps"][2]
        assert step["if"] == "${{ vars.CAIS_CA_CERT != '' }}"
        assert 'echo "PIP_CERT=$RUNNER_TEMP/ca.pem" >> "$GITHUB_ENV"' in step["run"]


def _jobs(provider: str, data: dict) -> list[str]:
    return list(data["jobs"] if provider == "github" else _gitlab_jobs(data))


@pytest.mark.parametrize("provider", ["github", "gitlab"])
@pytest.mark.parametrize(
    ("template", "jobs"),
    [
        ("script", ["build"]),
        ("flask", ["build"]),
        ("classifier", ["test", "train", "build"]),
    ],
)
def test_jobs_follow_what_the_project_has(provider, tmp_path, template, jobs):
    folder = _project(tmp_path, template)
    _, data = _write(provider, folder)
    assert _jobs(provider, data) == jobs
    _, data = _write(provider, folder, "--deploy", "kubectl")
    assert _jobs(provider, data) == [*jobs, "deploy"]
    if template == "classifier":
        script = "\n".join(
            _scripts(data["jobs"]["train"] if provider == "github" else data["train"])
        )
        assert "cais train ." in script
        assert "pip install $CAIS_PACKAGE -r requirements.txt" in script.replace('"', "")


def test_github_jobs_run_in_order_and_hand_over_the_models(tmp_path):
    folder = _project(tmp_path, "classifier")
    _, data = _write("github", folder, "--deploy", "compose-ssh")
    jobs = data["jobs"]
    assert "needs" not in jobs["test"]
    assert jobs["train"]["needs"] == ["test"]
    assert jobs["build"]["needs"] == ["train"]
    assert jobs["deploy"]["needs"] == ["build"]
    upload = next(s for s in jobs["train"]["steps"] if "upload-artifact" in s.get("uses", ""))
    download = next(s for s in jobs["build"]["steps"] if "download-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == download["with"]["path"] == ".cais/"
    assert jobs["train"]["env"]["CAIS_HOME"] == jobs["build"]["env"]["CAIS_HOME"]


@pytest.mark.parametrize("provider", ["github", "gitlab"])
@pytest.mark.parametrize("deploy", ["compose-ssh", "kubectl"])
def test_deploys_only_from_the_default_branch_by_the_commit_tag(provider, deploy, tmp_path):
    folder = _project(tmp_path, "flask")
    _, data = _write(provider, folder, "--deploy", deploy)
    if provider == "github":
        job = data["jobs"]["deploy"]
        assert job["if"] == (
            "${{ github.event_name == 'push' && github.ref == "
            "format('refs/heads/{0}', github.event.repository.default_branch) }}"
        )
        sha = "${GITHUB_SHA::8}"
    else:
        job = data["deploy"]
        assert job["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
        sha = "$CI_COMMIT_SHORT_SHA"
    script = "\n".join(_scripts(job))
    assert f"$IMAGE:{sha}" in script
    assert "latest" not in script and "$VERSION" not in script
    if deploy == "kubectl":
        assert f"kubectl set image --local -f k8s/deployment.yaml shop=$IMAGE:{sha}" in script
        assert "kubectl rollout status -f k8s/deployment.yaml" in script
    else:
        assert f"cais pull $IMAGE:{sha} && cais deploy compose $IMAGE:{sha} --up" in script
        assert '"$DEPLOY_HOST"' in script


def test_github_shell_steps_parse(tmp_path):
    """Every `run:` of every variant is valid bash (GitHub's default shell)."""
    folder = _project(tmp_path, "classifier")
    for options in OPTIONS:
        _, data = _write("github", folder, *options)
        for job in data["jobs"].values():
            for line in _scripts(job):
                done = subprocess.run(["bash", "-n"], input=line, capture_output=True, text=True)
                assert done.returncode == 0, line + done.stderr


def test_gitlab_shell_lines_parse(tmp_path):
    """Every script line of every variant is valid sh (the python images' /bin/sh)."""
    folder = _project(tmp_path, "classifier")
    for options in OPTIONS:
        _, data = _write("gitlab", folder, *options)
        lines = [*data["default"]["before_script"]]
        for job in _gitlab_jobs(data).values():
            lines += _scripts(job)
        for line in lines:
            done = subprocess.run(["sh", "-n"], input=line, capture_output=True, text=True)
            assert done.returncode == 0, line + done.stderr


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_default_file_is_at_the_repository_top_and_jobs_name_the_subfolder(provider, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    folder = _project(tmp_path / "services", "script", name="api")
    done = _cais("pipeline", provider, str(folder))
    assert done.exit_code == 0, done.output
    written = tmp_path / FILES[provider]
    assert done.stdout.strip() == str(written)
    script = _build_script(provider, yaml.safe_load(written.read_text()))
    assert "cais build services/api --builder oci" in script
    assert "cais pipeline version services/api" in script


@pytest.mark.parametrize(
    ("make", "args", "says"),
    [
        ("none", ["pipeline", "jenkins", "."], "`jenkins`"),
        ("none", ["pipeline", "gitlab", "nowhere"], "The folder `nowhere` does not exist"),
        ("empty", ["pipeline", "gitlab", "empty"], "is neither a project nor a saved model"),
        ("empty", ["pipeline", "github", "empty"], "is neither a project nor a saved model"),
        ("file", ["pipeline", "github", "notes.txt"], "is a file, not a project folder"),
        ("project", ["pipeline", "gitlab", "shop", "--registry", "http://r.example.com"], "not a"),
        (
            "project",
            ["pipeline", "gitlab", "shop", "--registry", "registry.example.com/Team"],
            "not a registry",
        ),
        ("project", ["pipeline", "github", "shop", "--registry", "ghcr.io/acme:1"], "not a"),
        ("project", ["pipeline", "github", "shop", "--registry", "a b"], "not a registry"),
        ("project", ["pipeline", "github", "shop", "--registry", ""], "not a registry"),
        ("project", ["pipeline", "github", "shop", "--deploy", "swarm"], "`swarm`"),
        ("none", ["pipeline", "version", "nowhere"], "nowhere"),
        ("dockerfile", ["pipeline", "gitlab", "shop"], "builds only with the Docker builder"),
        ("lock", ["pipeline", "github", "shop"], "builds only with the Docker builder"),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, monkeypatch, make, args, says):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIS_HOME", str(tmp_path / "home"))
    if make == "empty":
        (tmp_path / "empty").mkdir()
    elif make == "file":
        (tmp_path / "notes.txt").write_text("x")
        (tmp_path / "requirements.txt").write_text("")  # the folder itself is a project
        (tmp_path / "script.py").write_text("print(1)\n")
    elif make in ("project", "dockerfile", "lock"):
        _project(tmp_path, "script")
    if make == "dockerfile":
        (tmp_path / "shop" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    elif make == "lock":  # a lock file: exported by uv inside a Docker build
        (tmp_path / "shop" / "requirements.txt").unlink()
        (tmp_path / "shop" / "pyproject.toml").write_text(
            '[project]\nname = "shop"\nversion = "1"\ndependencies = ["humanize"]\n'
        )
        (tmp_path / "shop" / "uv.lock").write_text("version = 1\n")
    result = _cais(*args)
    code = 2 if says.startswith("`") and says in ("`jenkins`", "`swarm`") else 1
    assert says in assert_one_error(result, code=code)


def test_force_replaces_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, "script")
    (tmp_path / "shop" / ".gitlab-ci.yml").write_text("old")
    refused = _cais("pipeline", "gitlab", "shop")  # the default file, as a file at `-o`
    assert refused.exit_code == 1, refused.output
    assert "gitlab-ci.yml` exists already hint: add `--force`" in " ".join(refused.output.split())
    assert (tmp_path / "shop" / ".gitlab-ci.yml").read_text() == "old"
    assert _cais("pipeline", "gitlab", "shop", "--force").exit_code == 0
    assert "cais build . --builder oci" in (tmp_path / "shop" / ".gitlab-ci.yml").read_text()


def test_version_is_the_projects_the_models_and_the_newest_trained(tmp_path, monkeypatch):
    import cais

    monkeypatch.chdir(tmp_path)
    folder = _project(tmp_path, "script")
    text = (folder / "cais.yaml").read_text().replace("version: 0.1.0", "version: 2.3.4")
    (folder / "cais.yaml").write_text(text)
    assert _cais("pipeline", "version", "shop").stdout.strip() == "2.3.4"
    bundle = _bundle_folder(tmp_path, monkeypatch)
    assert _cais("pipeline", "version", str(bundle)).stdout.strip() == bundle.name
    trained = _project(tmp_path, "classifier", name="products")
    for _ in itertools.repeat(None, 2):
        newest = cais.save_model(text_model(), "products").split(":")[1]
    done = _cais("pipeline", "version", str(trained))
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == newest
