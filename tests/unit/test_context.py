"""cais.builders.context: .dockerignore patterns and the build context archive."""

from __future__ import annotations

import tarfile

import pytest

from cais.builders.context import context_archive, ignore_patterns
from cais.builders.dockerfile import DEFAULT_DOCKERIGNORE

DEFAULT = "# comment\n.git\n\n  .venv  \n*.pyc\n"


def test_project_dockerignore_wins(tmp_path):
    (tmp_path / ".dockerignore").write_text(
        "# mine\n\ndata/\n   # indented comment\n  *.log  \n!keep.log\n"
    )
    assert ignore_patterns(tmp_path, DEFAULT) == ["data/", "*.log", "!keep.log"]


def test_default_when_the_project_has_none(tmp_path):
    assert ignore_patterns(tmp_path, DEFAULT) == [".git", ".venv", "*.pyc"]


def test_no_patterns_at_all(tmp_path):
    assert ignore_patterns(tmp_path, None) == []


def test_empty_project_dockerignore_means_no_patterns(tmp_path):
    (tmp_path / ".dockerignore").write_text("")
    assert ignore_patterns(tmp_path, DEFAULT) == []


@pytest.fixture
def project(tmp_path, write):
    return write(
        tmp_path,
        {
            "script.py": "print('hi')\n",
            "requirements.txt": "rich\n",
            "pkg/util.py": "X = 1\n",
            "pkg/__pycache__/util.cpython-311.pyc": "bytes",
            ".git/config": "[core]\n",
            ".git/objects/ab/cdef": "blob",
            ".venv/lib/python3.11/site-packages/x.py": "",
            ".env": "SECRET=1\n",
            "data/train.csv": "a,b\n",
            "server.key": "key",
            "Dockerfile": "FROM scratch\n",
        },
    )


def names_in(archive) -> dict[str, bytes]:
    with tarfile.open(fileobj=archive) as tar:
        return {
            member.name: tar.extractfile(member).read()
            for member in tar.getmembers()
            if member.isfile()
        }


def test_archive_leaves_out_ignored_files(project):
    patterns = ignore_patterns(project, DEFAULT_DOCKERIGNORE)
    with context_archive(
        project, patterns=patterns, dockerfile_name="Dockerfile", extra_files={}
    ) as archive:
        files = names_in(archive)
    assert set(files) == {"script.py", "requirements.txt", "pkg/util.py", "Dockerfile"}
    assert files["script.py"] == b"print('hi')\n"


def test_archive_adds_extra_files_with_their_content(project):
    extra = {
        ".cais.Dockerfile": "FROM python:3.11-slim\nCOPY . .\n",
        ".cais-build-secrets/cais-pip.conf": "[global]\nindex-url = https://i.example/simple\n",
    }
    with context_archive(
        project, patterns=[".git", ".venv"], dockerfile_name=".cais.Dockerfile", extra_files=extra
    ) as archive:
        assert archive.tell() == 0  # rewound, ready to send
        files = names_in(archive)
    for name, text in extra.items():
        assert files[name] == text.encode()
    assert not any(name.startswith((".git/", ".venv/")) for name in files)
    assert "data/train.csv" in files  # not in these patterns


def test_archive_keeps_the_dockerfile_even_when_ignored(project):
    with context_archive(
        project, patterns=["Dockerfile", "*.py"], dockerfile_name="Dockerfile", extra_files={}
    ) as archive:
        files = names_in(archive)
    assert "Dockerfile" in files
    assert "script.py" not in files
    assert "pkg/util.py" in files  # `*.py` matches the top folder only, as in docker


def test_archive_exceptions_in_patterns(project):
    patterns = ["data/", "!data/train.csv", "pkg"]
    with context_archive(
        project, patterns=patterns, dockerfile_name="Dockerfile", extra_files={}
    ) as archive:
        files = names_in(archive)
    assert "data/train.csv" in files
    assert not any(name.startswith("pkg/") for name in files)
