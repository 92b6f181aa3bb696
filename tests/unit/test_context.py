"""cais.builders.context: .dockerignore patterns and the build context archive."""

from __future__ import annotations

import tarfile

import pytest

from cais.builders.context import IgnoreRules, context_archive, context_paths, ignore_patterns
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


# --- the matcher, against the Docker SDK's (the rules the classic builder's archive follows) ---

PATTERNS = [
    ".git",
    "*.pyc",
    "**/*.pyc",
    "**/__pycache__",
    "data/",
    "/data",
    "./data/../pkg",
    "pkg/*.py",
    "pkg/**",
    "**",
    "**/",
    "docs/**/*.md",
    "a?c",
    "[a-c]*.txt",
    "[!a-c]*.txt",
    "[^x]y",
    "[]]z",
    "[unclosed",
    "*.PY",
    "Data",
    ".",
    "",
    "!",
    "!keep.log",
    "!data/keep.csv",
    "!pkg/util.py",
    "*.log",
    "a\\*b",
    "x+y(z)",
]
PATHS = [
    ".git",
    ".git/HEAD",
    "x.pyc",
    "pkg/x.pyc",
    "pkg/__pycache__/m.cpython-311.pyc",
    "my__pycache__",
    "data",
    "data/train.csv",
    "data/keep.csv",
    "pkg",
    "pkg/util.py",
    "pkg/sub/deep.py",
    "docs/a/b/c.md",
    "docs/c.md",
    "abc",
    "a/c",
    "b1.txt",
    "z.txt",
    "ay",
    "xy",
    "]z",
    "[unclosed",
    "script.py",
    "keep.log",
    "other.log",
    "logs/keep.log",
    "a*b",
    "a\\*b",
    "x+y(z)",
    "Data/x",
    ".dockerignore",
    "Dockerfile",
]


def sdk_matcher():
    pytest.importorskip("docker")
    from docker.utils.build import PatternMatcher

    return PatternMatcher


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_keeps_out_what_the_sdk_keeps_out(pattern):
    reference = sdk_matcher()([pattern])
    rules = IgnoreRules([pattern])
    expected = [path for path in PATHS if reference.matches(path)]
    assert [path for path in PATHS if rules.matches(path)] == expected


@pytest.mark.parametrize(
    "patterns",
    [
        DEFAULT_DOCKERIGNORE.splitlines()[1:],
        ["data/", "!data/keep.csv", "*.log", "!keep.log"],
        ["**", "!pkg/util.py", "!Dockerfile"],
        ["pkg", "!pkg/util.py", "pkg/util.py"],  # the last match decides
        ["*.log", "!*.log", "*.log"],
    ],
)
def test_lists_of_patterns_decide_as_the_sdk_does(patterns):
    reference = sdk_matcher()(patterns)
    rules = IgnoreRules(patterns)
    assert [p for p in PATHS if rules.matches(p)] == [p for p in PATHS if reference.matches(p)]


@pytest.mark.parametrize(
    "patterns",
    [
        DEFAULT_DOCKERIGNORE.splitlines()[1:],
        ["data/", "!data/train.csv", "pkg"],  # an exception inside a folder kept out
        ["data", "!*/train.csv"],  # one that does not name the folder: it is not entered
        ["**", "!pkg"],
        [],
    ],
)
def test_the_context_s_files_are_those_the_sdk_sends(project, patterns, write):
    pytest.importorskip("docker")
    from docker.utils.build import exclude_paths

    (project / "link").symlink_to(project / "pkg")  # a link to a folder is not entered
    (project / ".dockerignore").write_text("\n".join(patterns) + "\n")
    expected = set(exclude_paths(str(project), list(patterns)))
    assert context_paths(project, None) == expected
    assert "Dockerfile" in expected  # sent whatever the patterns say
