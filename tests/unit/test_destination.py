"""The `-o` of every command that writes a file or a folder (`cais dockerfile`, `cais pipeline`,
`cais deploy …`): one check, one set of sentences, said before any work is done (no engine
answers here, so a command that got past the check says so instead)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cais.cli import app
from cais.cli._destination import write_file, writing
from cais.errors import CaisError
from tests.support import assert_one_error, unavailable

# Each command that writes with `-o`, as a user calls it (`shop` is a script project).
FILES = {
    "dockerfile": ["dockerfile", "shop"],
    "pipeline github": ["pipeline", "github", "shop"],
    "pipeline gitlab": ["pipeline", "gitlab", "shop"],
    "deploy compose": ["deploy", "compose", "products:1"],
    "deploy swarm": ["deploy", "swarm", "products:1"],
    "deploy kserve": ["deploy", "kserve", "products:1"],
}
FOLDERS = {"deploy k8s": ["deploy", "k8s", "products:1"]}
EVERY = {**FILES, **FOLDERS}
FORCE = ("pipeline github", "pipeline gitlab")  # the commands that have `--force`
ELSEWHERE = "hint: choose another place with `-o`"


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A folder with a project `shop`, a file `taken` and a folder `folder` in it, and no
    engine: paths are relative, as users write them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/engine.sock")  # short: no line wraps
    assert _cais("init", "shop").exit_code == 0
    (tmp_path / "taken").write_text("a file\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


def _cais(*args: str):
    return CliRunner().invoke(app, list(args))


def _tree(root: Path) -> dict[str, str | None]:
    """Every path below `root` with its text (None for a folder): what a refusal must leave."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_text()
        for p in sorted(root.rglob("*"))
        if "home" not in p.relative_to(root).parts
    }


@contextlib.contextmanager
def _unwritable(path: Path) -> Iterator[None]:
    """`path` made unwritable for this user: its write bits taken away, and, for root (whom
    permission bits do not stop), the immutable attribute (`chattr +i`)."""
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            path.chmod(mode)
            unavailable(f"cannot make `{path}` unwritable for root: {done.stderr.strip()}")
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def _refused(work: Path, args: list[str], said: str, hint: str = ELSEWHERE) -> None:
    before = _tree(work)
    output = assert_one_error(_cais(*args))
    assert output.splitlines()[0] == f"error: {said}", output
    assert hint in output, output
    assert _tree(work) == before


@pytest.mark.parametrize("command", EVERY)
def test_the_wrong_kind_of_place(work, command):
    """A folder where the file goes; for `k8s`, a file where the folder goes."""
    if command in FOLDERS:
        path, said = "taken", "`taken` is a file, and `-o` names the folder to write the files to"
    else:
        path, said = "folder", "`folder` is a folder, and `-o` names the file to write"
    wanted = "folder" if command in FOLDERS else "file"
    _refused(work, [*EVERY[command], "-o", path], said, f"hint: give `-o` the path of a {wanted}")


@pytest.mark.parametrize("command", EVERY)
@pytest.mark.parametrize("path", ["taken/out", "taken/a/b/out", "folder/taken/out"])
def test_a_path_through_a_file(work, command, path):
    (work / "folder" / "taken").write_text("a file\n")
    through = path.rpartition("taken")[0] + "taken"
    _refused(
        work,
        [*EVERY[command], "-o", path],
        f"Cannot write `{path}`: `{through}` is not a folder",
    )


@pytest.mark.parametrize("command", EVERY)
@pytest.mark.parametrize("path", ["folder/out", "folder/new/out"])
def test_a_folder_that_is_not_writable(work, command, path):
    with _unwritable(work / "folder"):
        _refused(
            work,
            [*EVERY[command], "-o", path],
            f"Cannot write `{path}`: `folder` is not writable",
        )


@pytest.mark.parametrize("command", FILES)
def test_a_file_that_is_not_writable(work, command):
    flags = ["--force"] if command in FORCE else []
    with _unwritable(work / "taken"):
        _refused(work, [*FILES[command], "-o", "taken", *flags], "`taken` is not writable")


@pytest.mark.parametrize("command", FOLDERS)
def test_an_output_folder_that_is_not_writable(work, command):
    with _unwritable(work / "folder"):
        _refused(work, [*FOLDERS[command], "-o", "folder"], "`folder` is not writable")


@pytest.mark.parametrize("command", FORCE)
@pytest.mark.parametrize("path", ["taken", "folder/ci.yml"])
def test_a_file_that_exists_needs_force(work, command, path):
    (work / "folder" / "ci.yml").write_text("mine\n")
    _refused(
        work,
        [*FILES[command], "-o", path],
        f"`{path}` exists already",
        "hint: add `--force` to replace it, or give another file with `-o`",
    )
    done = _cais(*FILES[command], "-o", path, "--force")
    assert done.exit_code == 0, done.output
    assert (work / path).read_text().startswith("#")


@pytest.mark.parametrize("command", ["dockerfile", *FORCE])
@pytest.mark.parametrize("path", ["out", "new/out", "folder/new/deeper/out"])
def test_missing_folders_are_made_and_a_file_is_written_again(work, command, path):
    flags = ["--force"] if command in FORCE else []
    for _ in range(2):
        done = _cais(*FILES[command], "-o", path, *flags)
        assert done.exit_code == 0, done.output
        assert f"Wrote `{path}`" in done.output
    assert (work / path).read_text().startswith("#")


@pytest.mark.parametrize("command", ["deploy compose", "deploy swarm", "deploy kserve"])
@pytest.mark.parametrize("path", ["taken", "new/out.yaml"])
def test_a_deployment_file_that_exists_or_not_goes_on_to_the_engine(work, command, path):
    """Deployments are written again in place, without `--force`: past the check, the next
    step is the engine (nobody runs one here)."""
    done = _cais(*FILES[command], "-o", path)
    assert done.exit_code == 1, done.output
    assert done.output.startswith("error: The Docker Engine at "), done.output


@pytest.mark.parametrize(
    ("make", "path", "said", "hint"),
    [
        (
            "folder",
            "out",
            "`out` is a folder, and `-o` names the file to write",
            "give `-o` the path of a file",
        ),
        ("file", "out/ci.yml", "Cannot write `out/ci.yml`: `out` is not a folder", ELSEWHERE[6:]),
        (
            "file",
            "out/a/ci.yml",
            "Cannot write `out/a/ci.yml`: `out` is not a folder",
            ELSEWHERE[6:],
        ),
    ],
)
def test_a_write_that_fails_after_the_check_says_what_the_check_says(
    tmp_path, monkeypatch, make, path, said, hint
):
    """What was put in the way after the check (or was never checked) is said in the check's
    words."""
    monkeypatch.chdir(tmp_path)
    if make == "folder":
        Path("out").mkdir()
    else:
        Path("out").write_text("a file\n")
    with pytest.raises(CaisError) as raised:
        write_file(Path(path), "text\n")
    assert (raised.value.message, raised.value.hint) == (said, hint)


def test_a_file_in_the_way_beside_a_compose_file_is_named(tmp_path, monkeypatch):
    """`cais deploy compose` writes nginx's configuration beside its `-o`: a file `nginx` in
    the way is named with the system's reason."""
    from cais.deploy.compose import write

    monkeypatch.chdir(tmp_path)
    Path("out").mkdir()
    Path("out/nginx").write_text("a file\n")
    files = {"compose.yaml": "services: {}\n", "nginx/default.conf": "server {}\n"}
    with pytest.raises(CaisError) as raised, writing(Path("out/compose.yaml")):
        write(files, Path("out"))
    assert raised.value.message == "Cannot write `out/nginx`: File exists"
    assert raised.value.hint == "choose another place with `-o`"


def test_a_folder_in_the_way_of_a_manifest_is_named(tmp_path, monkeypatch):
    """`cais deploy k8s` writes its manifests in its `-o` folder: a folder where one goes is
    named with the system's reason."""
    from cais.deploy.kubernetes import write

    monkeypatch.chdir(tmp_path)
    Path("k8s/deployment.yaml").mkdir(parents=True)
    with pytest.raises(CaisError) as raised, writing(Path("k8s"), folder=True):
        write({"deployment.yaml": "kind: Deployment\n"}, Path("k8s"))
    assert raised.value.message == "Cannot write `k8s/deployment.yaml`: Is a directory"
