"""The `cais` command line through typer's CliRunner: exit codes and what the user reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cais import __version__
from cais.cli import app
from cais.errors import CaisError, ProjectError
from cais.registry import credentials
from cais.registry.credentials import Credentials
from tests.support import (
    assert_ended_quietly,
    assert_one_error,
    run_cais_into_closed_pipe,
    text_model,
)

TEMPLATE_FILES = ("requirements.txt", "script.py", "cais.yaml", ".dockerignore", "README.md")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path, runner) -> Path:
    folder = tmp_path / "hello-app"
    result = runner.invoke(app, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_version(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"cais {__version__}\n"


def test_help_lists_the_commands_in_journey_order(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    positions = [
        result.output.index(f" {name} ")
        for name in ("init", "dockerfile", "build", "run", "login", "push")
    ]
    assert positions == sorted(positions)


# --- init -----------------------------------------------------------------------------------


def test_init_creates_a_project(tmp_path, runner):
    folder = tmp_path / "My Model"
    result = runner.invoke(app, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(TEMPLATE_FILES)
    config = (folder / "cais.yaml").read_text()
    assert "name: my-model\n" in config
    assert "{name}" not in config and "{python}" not in config
    assert "Created the script project `my-model`" in result.output
    assert "cais build" in result.output
    assert result.stdout == ""  # messages go to stderr


@pytest.mark.parametrize(
    ("folder", "written"),
    [("1", '"1"'), ("2024", '"2024"'), ("true", '"true"'), ("null", '"null"'), ("shop", "shop")],
)
def test_init_names_the_project_as_text_whatever_its_folder(tmp_path, runner, folder, written):
    """A folder named `1` must not give `name: 1`, which cais.yaml then reads as a number."""
    from cais.project import load_project

    result = runner.invoke(app, ["init", str(tmp_path / folder)])
    assert result.exit_code == 0, result.output
    assert f"name: {written}\n" in (tmp_path / folder / "cais.yaml").read_text()
    assert load_project(tmp_path / folder).name == folder


def test_init_refuses_to_overwrite(project, runner):
    (project / "script.py").write_text("my own work\n")
    before = {name: (project / name).read_text() for name in TEMPLATE_FILES}
    result = runner.invoke(app, ["init", str(project)])
    output = assert_one_error(result)
    assert (
        f"error: `{project}` already holds a project (.dockerignore, README.md, cais.yaml, requirements.txt, script.py)"
        in output
    )
    assert "hint: choose another folder, or add `--force` to overwrite those files" in output
    assert {name: (project / name).read_text() for name in TEMPLATE_FILES} == before


def test_init_refuses_even_one_existing_file(tmp_path, runner):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert_one_error(result)
    assert (tmp_path / "requirements.txt").read_text() == "numpy\n"
    assert not (tmp_path / "script.py").exists()


def test_init_force_overwrites(project, runner):
    (project / "script.py").write_text("my own work\n")
    result = runner.invoke(app, ["init", "--force", str(project)])
    assert result.exit_code == 0, result.output
    assert "my own work" not in (project / "script.py").read_text()
    assert "humanize" in (project / "script.py").read_text()


def test_init_into_a_file(tmp_path, runner):
    file = tmp_path / "file.txt"
    file.write_text("x")
    output = assert_one_error(runner.invoke(app, ["init", str(file)]))
    assert f"`{file}` is a file, not a folder" in output


# --- dockerfile -------------------------------------------------------------------------------


def test_dockerfile_of_an_initialised_project(project, runner):
    result = runner.invoke(app, ["dockerfile", str(project)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"# Dockerfile for hello-app, written by cais {__version__}.\n")
    assert "COPY requirements.txt ./" in text
    assert text.rstrip("\n").splitlines()[-1] in (
        'CMD ["python", "script.py"]',
        'ENTRYPOINT ["python", "script.py"]',
    )
    assert "USER 1000:1000" in text
    assert 'NAME="world"' in text
    assert "secret" not in text.lower()
    assert result.stderr == ""


def test_dockerfile_with_a_tag_and_ca_cert_form(project, runner, tmp_path):
    result = runner.invoke(
        app,
        ["dockerfile", str(project), "-t", "user/hello:2.0", "--ca-cert", str(tmp_path / "x.pem")],
    )
    assert result.exit_code == 0, result.output
    assert 'org.opencontainers.image.title="user/hello"' in result.stdout
    assert 'org.opencontainers.image.version="2.0"' in result.stdout
    assert "--mount=type=secret" in result.stdout


def test_dockerfile_written_to_a_file(project, runner, tmp_path):
    target = tmp_path / "Dockerfile.out"
    result = runner.invoke(app, ["dockerfile", str(project), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"Wrote `{target}`" in result.output
    written = target.read_text()
    printed = runner.invoke(app, ["dockerfile", str(project)]).stdout

    def without_created(text: str) -> list[str]:
        return [line for line in text.splitlines() if "image.created" not in line]

    assert without_created(written) == without_created(printed)
    assert written.startswith("# Dockerfile for hello-app")


HOST_ONLY = {
    ".git/HEAD": "ref: refs/heads/main\n",
    ".venv/bin/python": "",
    ".env": "TOKEN=secret\n",
    "run.py": "print('hi')\n",
}


@pytest.mark.parametrize("name", ["Dockerfile", "docker/Dockerfile.prod"])
def test_dockerfile_written_into_the_project_brings_cais_ignore_list(
    runner, tmp_path, monkeypatch, write, name
):
    """`docker build` (and `cais build`, taking it as the project's own) of the Dockerfile
    reads the project's .dockerignore: cais's default list is written there, with a note."""
    from cais.builders.context import WRITTEN_DOCKERIGNORE, excluded, ignore_patterns

    write(tmp_path / "app", HOST_ONLY)
    (tmp_path / "app" / "docker").mkdir()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["dockerfile", "app", "-o", f"app/{name}"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "app" / ".dockerignore").read_text() == WRITTEN_DOCKERIGNORE
    assert WRITTEN_DOCKERIGNORE.startswith("# Written by cais")
    assert "• wrote `app/.dockerignore` too: cais's default ignore list" in result.output
    patterns = ignore_patterns(tmp_path / "app", None)
    kept_out = excluded(patterns, (".git/HEAD", ".venv/bin/python", ".env", "run.py"))
    assert kept_out == [".git/HEAD", ".venv/bin/python", ".env"]


def test_dockerfile_never_replaces_a_projects_dockerignore(runner, tmp_path, write):
    project = write(tmp_path / "app", {**HOST_ONLY, ".dockerignore": "data/\n"})
    result = runner.invoke(app, ["dockerfile", str(project), "-o", str(project / "Dockerfile")])
    assert result.exit_code == 0, result.output
    assert (project / ".dockerignore").read_text() == "data/\n"
    assert ".dockerignore" not in result.output


def test_dockerfile_written_outside_the_project_writes_no_dockerignore(runner, tmp_path, write):
    project = write(tmp_path / "app", HOST_ONLY)
    result = runner.invoke(app, ["dockerfile", str(project), "-o", str(tmp_path / "Dockerfile")])
    assert result.exit_code == 0, result.output
    assert not (project / ".dockerignore").exists()
    assert not (tmp_path / ".dockerignore").exists()


def test_dockerfile_of_a_missing_folder(runner, tmp_path):
    missing = tmp_path / "missing"
    output = assert_one_error(runner.invoke(app, ["dockerfile", str(missing)]))
    assert f"error: The project folder `{missing}` does not exist" in output
    assert "hint: " in output


def test_dockerfile_with_malformed_cais_yaml(project, runner):
    (project / "cais.yaml").write_text("name: x\n  bad: [\n")
    output = assert_one_error(runner.invoke(app, ["dockerfile", str(project)]))
    assert "is not valid YAML at line" in output


def test_dockerfile_without_requirements(project, runner):
    (project / "requirements.txt").unlink()
    output = assert_one_error(runner.invoke(app, ["dockerfile", str(project)]))
    assert "has no requirements.txt" in output


def test_dockerfile_of_a_project_with_its_own(project, runner):
    (project / "Dockerfile").write_text("FROM scratch\n")
    output = assert_one_error(runner.invoke(app, ["dockerfile", str(project)]))
    assert "own Dockerfile" in output
    assert "hint: remove it to let cais write one" in output


def test_debug_shows_the_exception(runner, tmp_path):
    result = runner.invoke(app, ["--debug", "dockerfile", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert isinstance(result.exception, CaisError)
    assert isinstance(result.exception, ProjectError)
    assert "error:" not in result.output


def test_unexpected_errors_are_one_line_with_exit_2(project, runner, monkeypatch):
    import cais.build

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cais.build, "load_project", broken)
    output = assert_one_error(runner.invoke(app, ["dockerfile", str(project)]), code=2)
    assert "error: cais failed unexpectedly: RuntimeError: a bug" in output
    assert "--debug" in output
    debug = runner.invoke(app, ["--debug", "dockerfile", str(project)])
    assert isinstance(debug.exception, RuntimeError)


def test_interrupt_exits_130(project, runner, monkeypatch):
    import cais.build

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cais.build, "load_project", interrupted)
    result = runner.invoke(app, ["dockerfile", str(project)])
    assert result.exit_code == 130
    assert "interrupted" in result.output


# --- an unreachable engine -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["build", "{project}", "--builder", "docker"],
        ["build", "{project}", "--load"],
        ["images"],
        ["ps"],
        ["ps", "--all"],
        ["run", "x"],
        ["logs", "x"],
        ["stop", "x"],
        ["stop", "x", "y"],
        ["rm", "x"],
        ["exec", "x", "true"],
        ["tag", "x", "y:1"],
        ["rmi", "x"],
        ["pull", "x:1"],
    ],
    ids=lambda a: " ".join(a),
)
def test_unreachable_engine(project, runner, unreachable_engine, args):
    args = [a.replace("{project}", str(project)) for a in args]
    # `docker run` exits 125 when it fails itself, the other commands 1
    output = assert_one_error(runner.invoke(app, args), code=125 if args[0] == "run" else 1)
    assert f"error: The Docker Engine at `{unreachable_engine}` is not reachable" in output
    assert "hint: start the Docker Engine" in output


def test_build_arg_without_equals(project, runner, unreachable_engine):
    output = assert_one_error(
        runner.invoke(app, ["build", str(project), "--build-arg", "NOEQUALS"])
    )
    assert "error: `NOEQUALS` is not a build argument" in output
    assert "--build-arg KEY=VALUE" in output


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("ports: [80000]", "has a wrong value for `ports`: `80000` is not a port number"),
        ("ports: [web]", "has a wrong value for `ports`: `web` is not a port number"),
        ("version: 1.10", "has a wrong value for `version`: YAML reads the unquoted `1.10`"),
        ("python: 3.10", "has a wrong value for `python`: YAML reads the unquoted `3.10`"),
        (
            "base_image: Python:3.11",
            "`Python:3.11` has capital letters, and image names are lowercase",
        ),
        ("base_image: 'python:3.11 slim'", "`3.11 slim` is not a valid tag"),
        ("port: 8000", "has a setting cais does not know: `port`"),
        ("env: [A=1]", "`env` must be a mapping of names to values"),
    ],
)
@pytest.mark.parametrize("command", ["build", "dockerfile"])
def test_a_bad_cais_yaml_fails_before_the_engine(
    project, runner, unreachable_engine, setting, message, command
):
    (project / "cais.yaml").write_text(f"name: hello\n{setting}\n")
    output = assert_one_error(runner.invoke(app, [command, str(project)]))
    assert message in output
    assert "hint: " in output
    assert "not reachable" not in output


def test_build_with_a_missing_ca_cert_fails_before_the_engine(project, runner, unreachable_engine):
    output = assert_one_error(
        runner.invoke(app, ["build", str(project), "--ca-cert", "/missing.pem"])
    )
    assert "error: The CA certificate `/missing.pem` does not exist" in output
    assert "not reachable" not in output


def test_build_of_a_broken_project_fails_before_the_engine(project, runner, unreachable_engine):
    (project / "script.py").unlink()
    output = assert_one_error(runner.invoke(app, ["build", str(project)]))
    assert "The entrypoint `script.py` named in cais.yaml does not exist" in output
    assert "not reachable" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--platform", "linux/x86_64"], "`linux/x86_64` is not a platform cais knows"),
        (["-t", "Bad/Name:1"], "`Bad/Name:1` has capital letters, and image names are lowercase"),
        (["-t", "bad name:1"], "`bad name:1` is not a valid image name"),
    ],
    ids=["platform", "tag-capitals", "tag"],
)
def test_build_with_bad_options_fails_before_the_engine(
    project, runner, unreachable_engine, args, message
):
    output = assert_one_error(runner.invoke(app, ["build", str(project), *args]))
    assert message in output


# --- login / logout ---------------------------------------------------------------------------


def test_login_to_a_registry_that_does_not_answer(runner):
    config = credentials.config_path()
    result = runner.invoke(
        app, ["login", "127.0.0.1:1", "-u", "a", "--password-stdin"], input="pw-SECRET-123"
    )
    output = assert_one_error(result)
    assert "error: The registry `127.0.0.1:1` does not answer" in output
    assert "SECRET" not in output
    assert not config.exists()


def test_login_without_password_and_no_terminal(runner):
    output = assert_one_error(runner.invoke(app, ["login", "127.0.0.1:1", "-u", "a"]))
    assert "error: No password was given" in output
    assert "--password-stdin" in output
    assert not credentials.config_path().exists()


def test_login_without_user_and_no_terminal(runner):
    output = assert_one_error(
        runner.invoke(app, ["login", "127.0.0.1:1", "--password-stdin"], input="pw")
    )
    assert "error: A user name is needed" in output


def test_login_with_an_empty_password(runner):
    output = assert_one_error(
        runner.invoke(app, ["login", "127.0.0.1:1", "-u", "a", "--password-stdin"], input="\n")
    )
    assert "error: The password is empty" in output


def test_login_saves_checked_credentials(runner, monkeypatch):
    import cais.registry.auth as auth

    checked = []
    monkeypatch.setattr(
        auth, "verify_login", lambda registry, creds: checked.append((registry, creds))
    )
    result = runner.invoke(
        app, ["login", "127.0.0.1:5000", "-u", "ana", "--password-stdin"], input="tok3n\n"
    )
    assert result.exit_code == 0, result.output
    assert checked == [("127.0.0.1:5000", Credentials("ana", "tok3n"))]
    assert "Logged in to 127.0.0.1:5000 as `ana`" in result.output
    assert "tok3n" not in result.output
    assert credentials.get("127.0.0.1:5000") == Credentials("ana", "tok3n")


def test_logout(runner):
    credentials.store("127.0.0.1:5000", Credentials("ana", "pw"))
    result = runner.invoke(app, ["logout", "127.0.0.1:5000"])
    assert result.exit_code == 0
    assert "Logged out of 127.0.0.1:5000" in result.output
    assert json.loads(credentials.config_path().read_text())["auths"] == {}
    again = runner.invoke(app, ["logout", "127.0.0.1:5000"])
    assert again.exit_code == 0
    assert "Not logged in to 127.0.0.1:5000; nothing to do" in again.output


def test_logout_with_a_corrupt_config(runner):
    config = credentials.config_path()
    config.parent.mkdir(parents=True)
    config.write_text("{oops")
    output = assert_one_error(runner.invoke(app, ["logout"]))
    assert "cannot be read" in output
    assert config.read_text() == "{oops"


@pytest.mark.parametrize(
    "args",
    [
        ["push", "Bad/Name"],
        ["pull", "Bad/Name"],
        ["run", "Bad/Name"],
        ["run", "--rm", "-d", "Bad/Name", "--", "true"],
        ["tag", "bad/name", "Bad/Name"],
        ["tag", "Bad/Name", "good/name:1"],
    ],
    ids=lambda a: " ".join(a),
)
def test_capitals_in_image_names_fail_before_the_engine(runner, unreachable_engine, args):
    output = assert_one_error(runner.invoke(app, args), code=125 if args[0] == "run" else 1)
    assert "`Bad/Name` has capital letters, and image names are lowercase" in output
    assert "hint: use `bad/name`" in output


def test_push_of_an_invalid_reference_fails_before_the_engine(runner, unreachable_engine):
    output = assert_one_error(runner.invoke(app, ["push", "bad//name"]))
    assert "`bad//name` is not a valid image name" in output


def test_classifier_template_trains_and_saves(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("CAIS_HOME", str(tmp_path / "home"))
    folder = tmp_path / "shop"
    assert runner.invoke(app, ["init", str(folder), "--template", "classifier"]).exit_code == 0
    assert (folder / "tests" / "test_model.py").is_file()
    assert '"shop"' in (folder / "train.py").read_text()
    result = runner.invoke(app, ["train", str(folder)])
    assert result.exit_code == 0, result.output
    from cais.bundle.store import ModelStore

    bundle = ModelStore(tmp_path / "home").get("shop")
    assert bundle.metadata.metrics["accuracy"] > 0.9
    assert bundle.metadata.input_example == ["livro de poesia capa dura", "batom vermelho"]


def test_train_without_a_script_or_with_a_failing_one(runner, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "requirements.txt").write_text("")
    (folder / "main.py").write_text("print(1)\n")
    assert_one_error(runner.invoke(app, ["train", str(folder)]))
    (folder / "train.py").write_text("raise SystemExit(3)\n")
    result = runner.invoke(app, ["train", str(folder)])
    assert result.exit_code == 1
    assert "error: `train.py` failed with exit code 3" in result.output
    assert "Traceback" not in result.output


# --- web apps ---------------------------------------------------------------------------------


def test_init_a_flask_project(tmp_path, runner):
    folder = tmp_path / "web"
    result = runner.invoke(app, ["init", str(folder), "--template", "flask"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        ".dockerignore",
        "README.md",
        "app.py",
        "cais.yaml",
        "requirements.txt",
    ]
    assert "cais run -d -p 8080:8000 web:0.1.0" in result.stderr
    assert "{name}" not in (folder / "README.md").read_text()


def test_dockerfile_of_a_flask_project_says_how_to_run_it(tmp_path, runner):
    folder = tmp_path / "web"
    assert runner.invoke(app, ["init", str(folder), "--template", "flask"]).exit_code == 0
    result = runner.invoke(app, ["dockerfile", str(folder), "-t", "me/web:2"])
    assert result.exit_code == 0, result.output
    assert 'CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]' in result.stdout
    assert result.stderr.splitlines() == [
        "• `app.py` defines a Flask app: gunicorn serves it on port 8000",
        "• once built, run it: `cais run -p 8000:8000 me/web:2`",
    ]


def test_dockerfile_warns_of_a_server_on_127_0_0_1(project, runner):
    (project / "script.py").write_text("from web import app\n\napp.run(debug=True)\n")
    result = runner.invoke(app, ["dockerfile", str(project)])
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: `script.py` line 3: `app.run(debug=True)` listens on 127.0.0.1, which "
        'nothing outside the container can reach; pass `host="0.0.0.0"`\n'
    )


def test_build_tells_when_the_own_dockerfile_mounts_no_pip_settings(
    tmp_path, runner, unreachable_engine, monkeypatch
):
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\nRUN pip install six\n")
    result = runner.invoke(app, ["build", str(tmp_path), "--index-url", "https://i.example/s"])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # as the console wrapped it, unwrapped
    assert (
        "• `Dockerfile` mounts no pip settings (the build secrets `cais-pip.conf` and "
        "`cais-ca.pem`), so its pip steps run without a package index"
    ) in said


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["run", "--help"], ["models", "list"], ["dockerfile", "{project}"]],
    ids=" ".join,
)
def test_a_closed_output_pipe_ends_cais_quietly(project, tmp_path, args):
    """`cais --help | head -1` and the like, once the reader has gone: no error, exit 1."""
    import cais

    home = tmp_path / "cais-home"
    if args[0] == "models":
        cais.save_model(text_model(), "products", home=home)
    args = [a.replace("{project}", str(project)) for a in args]
    assert_ended_quietly(run_cais_into_closed_pipe(*args, env={"CAIS_HOME": str(home)}))
