"""`cais run -v` against the real engine: an existing host path never changes owner or mode;
the program in the container can write where it should, as the image's user or as you."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import run_cais, unavailable

pytestmark = pytest.mark.engine

IMAGE_UID = 1000
NOBODY = 65534
# What the program in the container reports: who it runs as, its HOME, and whether it wrote.
PROBE = 'id -u; id -g; echo "$HOME"; echo written > /data/out.txt && echo wrote'


def image_with_user(engine, base_image: str, user: str):
    """The base image running as `user`; removed when the module's tests are done."""
    name = f"cais-test-user-{uuid.uuid4().hex[:8]}"
    container = engine.containers.create(base_image, "true")
    try:
        container.commit(repository=name, tag="1", changes=[f"USER {user}"])
    finally:
        container.remove(force=True)
    yield f"{name}:1"
    engine.images.remove(f"{name}:1", force=True)


@pytest.fixture(scope="module")
def user_image(engine, base_image):
    """A non-root user by number (uid 1000), as cais's own images have."""
    yield from image_with_user(engine, base_image, f"{IMAGE_UID}:{IMAGE_UID}")


@pytest.fixture(scope="module")
def named_user_image(engine, base_image):
    """A user given by name, as many public images have."""
    yield from image_with_user(engine, base_image, "nobody")


@pytest.fixture
def place():
    """A folder every user can reach (pytest's tmp_path is root's own), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cais-mounts-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def stat_of(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, info.st_mode


def as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`cais` run by an ordinary user: uid 65534 in the docker group. It keeps only the
    right to read and search folders (the interpreter lives under root's 0700 home here),
    never the right to write, chown or chmod what it does not own."""
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) is not installed")
    docker_gid = os.stat("/var/run/docker.sock").st_gid
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            f"--groups={docker_gid}",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            sys.executable,
            "-m",
            "cais",
            *args,
        ],
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd), "NO_COLOR": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def probe(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.fixture(autouse=True)
def as_root():
    if os.geteuid() != 0:
        unavailable("these tests act as several users, so they run as root")


def test_existing_root_folder_0755_runs_the_container_as_its_owner(user_image, place):
    folder = place / "data"
    folder.mkdir(mode=0o755)
    before = stat_of(folder)
    done = run_cais("run", "--rm", "-v", f"{folder}:/data", user_image, "--", "sh", "-c", PROBE)
    assert probe(done) == ["0", "0", "/tmp", "wrote"]
    assert stat_of(folder) == before
    assert f"the image's user (uid {IMAGE_UID}) cannot write `{folder}`" in done.stderr
    assert "runs as the folder's owner (0:0) with HOME=/tmp" in done.stderr


def test_a_users_folder_gets_files_owned_by_that_user(user_image, place):
    folder = place / "mine"
    folder.mkdir(mode=0o755)
    os.chown(folder, 4242, 4242)
    before = stat_of(folder)
    done = run_cais("run", "--rm", "-v", f"{folder}:/data", user_image, "--", "sh", "-c", PROBE)
    assert probe(done) == ["4242", "4242", "/tmp", "wrote"]
    assert stat_of(folder) == before
    assert (folder / "out.txt").stat().st_uid == 4242


def test_a_folder_everyone_may_write_is_left_to_the_images_user(user_image, place):
    folder = place / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    before = stat_of(folder)
    done = run_cais("run", "--rm", "-v", f"{folder}:/data", user_image, "--", "sh", "-c", PROBE)
    assert probe(done)[:2] == [str(IMAGE_UID), str(IMAGE_UID)]
    assert probe(done)[-1] == "wrote"
    assert stat_of(folder) == before
    assert "cannot write" not in done.stderr


def test_a_file_mount_is_read_and_never_changed(user_image, place):
    data = place / "input.csv"
    data.write_text("a,b\n1,2\n")
    data.chmod(0o644)
    before = stat_of(data)
    done = run_cais(
        "run",
        "--rm",
        "-v",
        f"{data}:/input.csv",
        user_image,
        "--",
        "sh",
        "-c",
        "id -u; cat /input.csv",
    )
    assert probe(done) == [str(IMAGE_UID), "a,b", "1,2"]
    assert stat_of(data) == before


def test_a_link_to_a_folder_changes_neither_link_nor_target(user_image, place):
    target = place / "target"
    target.mkdir(mode=0o755)
    link = place / "link"
    link.symlink_to(target)
    before = (stat_of(target), link.lstat().st_mode, os.readlink(link))
    done = run_cais("run", "--rm", "-v", f"{link}:/data", user_image, "--", "sh", "-c", PROBE)
    assert probe(done)[-1] == "wrote"
    assert (stat_of(target), link.lstat().st_mode, os.readlink(link)) == before
    assert (target / "out.txt").read_text() == "written\n"


def test_a_read_only_mount_is_read_and_cannot_be_written(user_image, place):
    folder = place / "models"
    folder.mkdir(mode=0o700)
    (folder / "model.txt").write_text("weights")
    before = stat_of(folder)
    done = run_cais(
        "run",
        "--rm",
        "-v",
        f"{folder}:/models:ro",
        user_image,
        "--",
        "sh",
        "-c",
        "id -u; touch /models/new 2>/dev/null && echo wrote || echo refused",
    )
    assert probe(done) == [str(IMAGE_UID), "refused"]
    assert stat_of(folder) == before
    assert not (folder / "new").exists()


def test_a_missing_read_only_source_is_one_sentence(user_image, place):
    done = run_cais("run", "--rm", "-v", f"{place}/nothing:/models:ro", user_image, "true")
    assert done.returncode == 125  # docker run's own failures
    assert done.stderr.startswith(f"error: `{place}/nothing` does not exist, so there is nothing")
    assert "Traceback" not in done.stderr
    assert not (place / "nothing").exists()


def test_folders_cais_creates_are_given_to_the_images_user(user_image, place):
    folder = place / "new" / "nested" / "out"
    done = run_cais("run", "--rm", "-v", f"{folder}:/data", user_image, "--", "sh", "-c", PROBE)
    assert probe(done)[:2] == [str(IMAGE_UID), str(IMAGE_UID)]
    assert probe(done)[-1] == "wrote"
    assert stat_of(folder)[:2] == (IMAGE_UID, IMAGE_UID)
    # only the mounted folder is handed over; the folders above it stay the caller's
    assert stat_of(place / "new")[:2] == (0, 0)
    assert f"created `{folder}` for the image's user (uid {IMAGE_UID})" in done.stderr


def test_an_ordinary_users_own_folder_runs_the_container_as_them(user_image, place):
    os.chown(place, NOBODY, NOBODY)
    folder = place / "results"
    folder.mkdir(mode=0o755)
    os.chown(folder, NOBODY, NOBODY)
    before = stat_of(folder)
    done = as_nobody(
        "run", "--rm", "-v", "./results:/data", user_image, "--", "sh", "-c", PROBE, cwd=place
    )
    assert probe(done) == [str(NOBODY), str(NOBODY), "/tmp", "wrote"]
    assert stat_of(folder) == before
    assert (folder / "out.txt").stat().st_uid == NOBODY
    assert f"the container runs as you ({NOBODY}:{NOBODY}) with HOME=/tmp" in done.stderr


def test_an_ordinary_user_gets_new_folders_of_their_own(user_image, place):
    os.chown(place, NOBODY, NOBODY)
    done = as_nobody(
        "run", "--rm", "-v", "./a/b:/data", user_image, "--", "sh", "-c", PROBE, cwd=place
    )
    assert probe(done) == [str(NOBODY), str(NOBODY), "/tmp", "wrote"]
    assert stat_of(place / "a" / "b")[:2] == (NOBODY, NOBODY)


def test_a_folder_nobody_involved_can_write_is_one_sentence(engine, user_image, place):
    folder = place / "system"
    folder.mkdir(mode=0o755)
    before = stat_of(folder)
    name = f"cais-test-{uuid.uuid4().hex[:8]}"
    done = as_nobody("run", "--name", name, "-v", f"{folder}:/data", user_image, "true", cwd=place)
    assert done.returncode == 125  # docker run's own failures
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0] == (
        f"error: `{folder}` cannot be written by the image's user (uid {IMAGE_UID}) "
        f"nor by you (uid {NOBODY})"
    )
    assert lines[1].startswith("hint: mount a folder you own")
    assert stat_of(folder) == before
    assert not engine.containers.list(all=True, filters={"name": name})


def test_a_folder_that_cannot_be_created_is_one_sentence(user_image, place):
    locked = place / "locked"
    locked.mkdir(mode=0o755)  # root's: an ordinary user cannot create folders in it
    done = as_nobody("run", "--rm", "-v", f"{locked}/out:/data", user_image, "true", cwd=place)
    assert done.returncode == 125  # docker run's own failures
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: cais cannot create `{locked}/out` to mount it: Permission denied",
        "hint: create it yourself, or mount a folder in a place you can write",
    ]
    assert not (locked / "out").exists()


def test_a_user_given_by_name_is_found_in_the_image(engine, named_user_image, place):
    shared = place / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    done = run_cais(
        "run", "--rm", "-v", f"{shared}:/data", named_user_image, "--", "sh", "-c", PROBE
    )
    assert probe(done)[:2] == [str(NOBODY), str(NOBODY)]
    assert "cannot write" not in done.stderr
    private = place / "private"
    private.mkdir(mode=0o755)
    before = stat_of(private)
    done = run_cais(
        "run", "--rm", "-v", f"{private}:/data", named_user_image, "--", "sh", "-c", PROBE
    )
    assert probe(done) == ["0", "0", "/tmp", "wrote"]
    assert f"the image's user (uid {NOBODY}) cannot write `{private}`" in done.stderr
    assert stat_of(private) == before
    leftovers = engine.containers.list(all=True, filters={"ancestor": named_user_image})
    assert leftovers == []  # the container that read /etc/passwd is gone too
