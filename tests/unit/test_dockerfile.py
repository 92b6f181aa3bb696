"""cais.builders.dockerfile.render_dockerfile, read as a Dockerfile parser would read it."""

from __future__ import annotations

import itertools
import json
import re
import shlex

import pytest

from cais import __version__
from cais.builders.dockerfile import (
    DEFAULT_DOCKERIGNORE,
    PIP_CA_SECRET,
    PIP_CONF_SECRET,
    SECRETS_DIR,
    SecretsMode,
    render_dockerfile,
)
from cais.errors import PlanError
from cais.plan import AppStep, DependencyStep, ImagePlan, plan_project
from cais.project import load_project

REQUIREMENTS = DependencyStep(files=("requirements.txt",), requirements="requirements.txt")
PACKAGES = DependencyStep(
    files=("pyproject.toml",),
    packages=("requests>=2,<3", "rich", 'pywin32; sys_platform == "win32"'),
)
LABELS = {
    "org.opencontainers.image.title": "hello",
    "org.opencontainers.image.version": "1.0",
    "org.opencontainers.image.created": "2024-05-01T12:00:00Z",
}


def make_plan(**changes) -> ImagePlan:
    fields = dict(
        name="hello",
        tag="1.0",
        base_image="python:3.11-slim",
        python="3.11",
        python_source="cais.yaml",
        dependencies=REQUIREMENTS,
        entrypoint=("python", "script.py"),
        labels=LABELS,
    )
    fields.update(changes)
    return ImagePlan(**fields)


# --- a small Dockerfile reader -----------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def docker_words(text: str) -> list[str]:
    """Split arguments as the Dockerfile frontend does (moby/buildkit shell/lex.go), with an
    empty environment: quotes removed, `\\` escapes only `"`, `$` and `\\` inside double quotes,
    and `$NAME`/`${NAME}` expanded (to nothing)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    i = 0

    def dollar(i: int) -> tuple[str, int]:
        j = i + 1
        if j < len(text) and text[j] == "{":
            return "", text.index("}", j) + 1
        k = j
        if k < len(text) and text[k].isdigit():
            while k < len(text) and text[k].isdigit():
                k += 1
            return "", k
        if k < len(text) and text[k] in "@*#?-$!0":
            return "", k + 1
        while k < len(text) and (text[k].isalnum() or text[k] == "_"):
            k += 1
        return ("$", j) if k == j else ("", k)

    while i < len(text):
        ch = text[i]
        if ch == "'":
            end = text.index("'", i + 1)
            word.append(text[i + 1 : end])
            in_word, i = True, end + 1
        elif ch == '"':
            i += 1
            while text[i] != '"':
                if text[i] == "$":
                    value, i = dollar(i)
                    word.append(value)
                    continue
                if text[i] == "\\" and text[i + 1] in '"$\\':
                    i += 1
                word.append(text[i])
                i += 1
            in_word, i = True, i + 1
        elif ch == "$":
            value, i = dollar(i)
            word.append(value)
            in_word = True
        elif ch == "\\" and i + 1 < len(text):
            word.append(text[i + 1])
            in_word, i = True, i + 2
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
        else:
            word.append(ch)
            in_word, i = True, i + 1
    if in_word:
        words.append("".join(word))
    return words


def key_values(args: str) -> dict[str, str]:
    """ENV/LABEL arguments → the values the image gets."""
    return dict(word.split("=", 1) for word in docker_words(args))


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (each starts at a FROM)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, args))
    return result


def index_of(items: list[tuple[str, str]], keyword: str, args_contains: str = "") -> int:
    for number, (kw, args) in enumerate(items):
        if kw == keyword and args_contains in args:
            return number
    raise AssertionError(f"no {keyword} {args_contains!r} in {items}")


def program_copy(steps: list[tuple[str, str]]) -> int:
    """Where the final stage copies the program in (its last COPY)."""
    final_from = max(n for n, (kw, _) in enumerate(steps) if kw == "FROM")
    copies = [n for n, (kw, _) in enumerate(steps) if kw == "COPY" and n > final_from]
    return copies[-1]


# --- the reader itself --------------------------------------------------------------------


def test_docker_words_reader():
    assert docker_words('A="x y" B=z') == ["A=x y", "B=z"]
    assert docker_words(r'A="a \"q\" \\ \n"') == ['A=a "q" \\ \\n']
    assert docker_words('A="cost $5" B=${HOME}x C=\\$D') == ["A=cost ", "B=x", "C=$D"]


# --- the default Dockerfile -------------------------------------------------------------


def test_header_names_the_image_and_cais():
    text = render_dockerfile(make_plan())
    assert text.splitlines()[0] == f"# Dockerfile for hello, written by cais {__version__}."
    assert "(Python 3.11 from cais.yaml)" in text


def _last_command(run_args: str) -> list[str]:
    """The words of the last `&&`-joined command of a RUN (the user is added before pip)."""
    return shlex.split(run_args.split("&&")[-1])


def test_the_user_is_added_in_the_dependency_step():
    steps = instructions(render_dockerfile(make_plan()))
    runs = [args for kw, args in steps if kw == "RUN"]
    assert len(runs) == 1
    commands = [c.strip() for c in runs[0].split(" && ")]
    assert commands[0] == (
        "{ grep -q '^[^:]*:[^:]*:1000:' /etc/group || echo 'app:x:1000:' >> /etc/group; }"
    )
    assert commands[1] == (
        "{ grep -q '^[^:]*:[^:]*:1000:' /etc/passwd "
        "|| echo 'app:x:1000:1000::/home/app:/usr/sbin/nologin' >> /etc/passwd; }"
    )
    assert commands[2:4] == ["mkdir -p /home/app", "chown 1000:1000 /home/app"]
    assert commands[4].startswith("pip install")


def test_dependencies_are_copied_and_installed_before_the_code():
    steps = instructions(render_dockerfile(make_plan()))
    copy_deps = index_of(steps, "COPY", "requirements.txt")
    install = index_of(steps, "RUN", "pip install")
    copy_all = steps.index(("COPY", ". ."))
    assert copy_deps < install < copy_all
    assert steps[copy_deps] == ("COPY", "requirements.txt ./")
    assert _last_command(steps[install][1]) == [
        "pip",
        "install",
        "--no-cache-dir",
        "-r",
        "requirements.txt",
    ]


def test_pyproject_packages_are_installed_before_the_code():
    steps = instructions(render_dockerfile(make_plan(dependencies=PACKAGES)))
    install = index_of(steps, "RUN", "pip install")
    assert index_of(steps, "COPY", "pyproject.toml") < install < steps.index(("COPY", ". ."))
    assert _last_command(steps[install][1]) == [
        "pip",
        "install",
        "--no-cache-dir",
        *PACKAGES.packages,
    ]


def test_no_dependency_step():
    text = render_dockerfile(make_plan(dependencies=None))
    steps = instructions(text)
    assert [kw for kw, _ in steps if kw == "RUN"] == ["RUN"]  # only the user is created
    assert "pip install" not in text
    assert ("COPY", ". .") in steps


@pytest.mark.parametrize("mode", [SecretsMode.NONE, SecretsMode.BUILDKIT])
def test_installable_project_is_installed_after_the_code(mode):
    plan = make_plan(dependencies=PACKAGES, app=AppStep(install_project=True))
    steps = instructions(render_dockerfile(plan, secrets=mode))
    install = index_of(steps, "RUN", "--no-deps .")
    assert program_copy(steps) < install
    assert install > max(n for n, (kw, _) in enumerate(steps) if kw == "FROM")


def test_installable_project_is_installed_in_the_program_stage_with_the_settings():
    plan = make_plan(dependencies=PACKAGES, app=AppStep(install_project=True))
    steps = instructions(render_dockerfile(plan, secrets=SecretsMode.STAGE))
    last_from = max(n for n, (kw, _) in enumerate(steps) if kw == "FROM")
    install = index_of(steps, "RUN", "--no-deps --prefix=/install /src")
    assert install < last_from
    assert "PIP_CONFIG_FILE=/run/secrets/" in steps[install][1]
    final = steps[last_from:]
    assert ("COPY", "--from=program /install /usr/local") in final
    assert not any("pip install" in args for kw, args in final if kw == "RUN")


@pytest.mark.parametrize("mode", list(SecretsMode))
def test_runs_as_uid_1000_never_root(mode):
    steps = instructions(render_dockerfile(make_plan(), secrets=mode))
    users = [args for kw, args in steps if kw == "USER"]
    assert users == ["1000:1000"]
    assert index_of(steps, "USER") > program_copy(steps)
    added = index_of(steps, "RUN", "/etc/passwd")
    assert "echo 'app:x:1000:' >> /etc/group" in steps[added][1]
    assert "echo 'app:x:1000:1000::/home/app:/usr/sbin/nologin' >> /etc/passwd" in steps[added][1]


def test_python_environment():
    steps = instructions(render_dockerfile(make_plan()))
    env = key_values(steps[index_of(steps, "ENV", "PYTHON")][1])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PIP_NO_CACHE_DIR"] == "1"


# The program's command: exec (JSON) form, last; CMD since the commit "CMD instead of ENTRYPOINT".
PROGRAM = ("CMD", "ENTRYPOINT")


def test_workdir_ports_and_command():
    steps = instructions(render_dockerfile(make_plan(ports=(8000, 9000))))
    assert ("WORKDIR", "/app") in steps
    assert ("EXPOSE", "8000 9000") in steps
    keyword, args = steps[-1]
    assert keyword in PROGRAM
    assert json.loads(args) == ["python", "script.py"]
    assert [kw for kw, _ in steps].count(keyword) == 1


def test_command_is_json_even_with_odd_arguments():
    entrypoint = ("python", "script.py", "--name", 'Ana "Bia"', "--path", "C:\\x", "João")
    steps = instructions(render_dockerfile(make_plan(entrypoint=entrypoint)))
    keyword, args = steps[-1]
    assert keyword in PROGRAM
    assert args.startswith("[")
    assert json.loads(args) == list(entrypoint)


def test_no_ports_no_expose():
    assert "EXPOSE" not in render_dockerfile(make_plan())


def test_labels():
    labels = {
        **LABELS,
        "org.opencontainers.image.source": "https://host/x.git",
        "dev.cais.version": __version__,
    }
    steps = instructions(render_dockerfile(make_plan(labels=labels)))
    assert key_values(dict(steps)["LABEL"]) == labels


def test_env_of_cais_yaml():
    env = {"NAME": "world", "OUTPUT_DIR": "/data", "EMPTY": ""}
    steps = instructions(render_dockerfile(make_plan(env=env)))
    env_steps = [args for kw, args in steps if kw == "ENV"]
    assert len(env_steps) == 2
    assert key_values(env_steps[1]) == env
    assert index_of(steps, "ENV", "OUTPUT_DIR") < index_of(steps, "USER")


@pytest.mark.parametrize(
    "value",
    [
        "two words",
        'say "hi" there',
        "single ' quote",
        "back\\slash",
        "trailing \\",
        "a=b=c",
        "  spaces around  ",
        pytest.param(
            "cost $5 or ${HOME}",
        ),
        pytest.param(
            "Olá João",
        ),
    ],
)
def test_env_values_arrive_unchanged(value):
    steps = instructions(render_dockerfile(make_plan(env={"VALUE": value})))
    env_args = [args for kw, args in steps if kw == "ENV"][-1]
    assert key_values(env_args) == {"VALUE": value}


@pytest.mark.parametrize("value", ["tab\there", "two\nlines", "bell\x07"])
def test_control_characters_are_refused_with_a_sentence(value):
    with pytest.raises(PlanError) as caught:
        render_dockerfile(make_plan(env={"VALUE": value}))
    assert "control character" in caught.value.message
    assert repr(value) in caught.value.message


# --- secrets modes ------------------------------------------------------------------------


def test_secrets_none_has_no_secret_at_all():
    text = render_dockerfile(make_plan(), secrets=SecretsMode.NONE)
    lowered = text.lower()
    assert "secret" not in lowered
    assert SECRETS_DIR not in text
    assert "PIP_CONFIG_FILE" not in text
    assert "--mount" not in text
    assert len(stages(text)) == 1


def test_secrets_buildkit_mounts_them_in_the_install_step():
    text = render_dockerfile(make_plan(), secrets=SecretsMode.BUILDKIT)
    steps = instructions(text)
    assert len(stages(text)) == 1
    install = steps[index_of(steps, "RUN", "pip install")][1]
    assert install.startswith(
        f"--mount=type=secret,id={PIP_CONF_SECRET} --mount=type=secret,id={PIP_CA_SECRET} "
    )
    assert f"PIP_CONFIG_FILE=/run/secrets/{PIP_CONF_SECRET} pip install" in install
    assert index_of(steps, "COPY", "requirements.txt") < index_of(steps, "RUN", "pip install")
    assert SECRETS_DIR not in text
    # Only the install step sees the secrets.
    assert sum("--mount=type=secret" in args for _, args in steps) == 1


def test_secrets_stage_installs_in_a_throw_away_stage():
    text = render_dockerfile(make_plan(), secrets=SecretsMode.STAGE)
    all_stages = stages(text)
    assert len(all_stages) >= 2
    first, final = all_stages[0], all_stages[-1]
    assert first[0] == ("FROM", "python:3.11-slim AS dependencies")
    assert final[0] == ("FROM", "python:3.11-slim")  # the image itself, unnamed and last
    assert ("COPY", f"{SECRETS_DIR}/ /run/secrets/") in first
    assert ("COPY", "requirements.txt ./") in first
    install = first[index_of(first, "RUN", "pip install")][1]
    assert install.startswith(f"PIP_CONFIG_FILE=/run/secrets/{PIP_CONF_SECRET} ")
    assert shlex.split(install)[1:] == [
        "pip",
        "install",
        "--no-cache-dir",
        "--prefix=/install",
        "-r",
        "requirements.txt",
    ]
    dependencies = ("COPY", "--from=dependencies /install /usr/local")
    assert dependencies in final
    assert final.index(dependencies) < program_copy(final)
    final_text = text[text.rindex("\nFROM ") :]
    assert SECRETS_DIR not in final_text
    assert "/run/secrets" not in final_text
    assert "PIP_CONFIG_FILE" not in final_text
    assert "pip install -r" not in final_text
    # The build context holds the secrets dir, so the final stage copies nothing from it
    # directly; only from the stages before it.
    from_context = [args for kw, args in final if kw in ("COPY", "ADD") and "--from=" not in args]
    assert from_context == []
    # The secrets dir reaches no stage other than the first one by name either.
    for stage in all_stages[1:]:
        assert not any(kw == "COPY" and SECRETS_DIR in args for kw, args in stage)


def test_secrets_stage_without_dependencies_needs_no_stage():
    text = render_dockerfile(make_plan(dependencies=None), secrets=SecretsMode.STAGE)
    assert len(stages(text)) == 1
    assert SECRETS_DIR not in text


def test_installing_the_project_also_gets_the_pip_settings():
    plan = make_plan(dependencies=PACKAGES, app=AppStep(install_project=True))
    steps = instructions(render_dockerfile(plan, secrets=SecretsMode.BUILDKIT))
    installs = [args for kw, args in steps if kw == "RUN" and "pip install" in args]
    assert len(installs) == 2
    assert all("--mount=type=secret" in args for args in installs)


@pytest.mark.parametrize("mode", [SecretsMode.NONE, SecretsMode.BUILDKIT, SecretsMode.STAGE])
def test_requirements_in_a_subfolder_are_installed_from_where_they_were_copied(
    tmp_path, write, mode
):
    write(
        tmp_path,
        {"reqs/prod.txt": "rich\n", "script.py": "", "cais.yaml": "requirements: reqs/prod.txt\n"},
    )
    text = render_dockerfile(plan_project(load_project(tmp_path)), secrets=mode)
    steps = stages(text)[0]
    source, destination = steps[index_of(steps, "COPY", "prod.txt")][1].split()
    assert source == "reqs/prod.txt"
    copied_to = destination + "prod.txt" if destination.endswith("/") else destination
    install = shlex.split(
        steps[index_of(steps, "RUN", "pip install")][1].split("pip install", 1)[1]
    )
    requirement_file = install[install.index("-r") + 1]
    workdir = "/app/" if mode is not SecretsMode.STAGE else "/"
    resolve = lambda path: path if path.startswith("/") else workdir + path.removeprefix("./")  # noqa: E731
    assert resolve(requirement_file) == resolve(copied_to)


# --- readability --------------------------------------------------------------------------

_VARIANTS = list(
    itertools.product(
        list(SecretsMode),
        [REQUIREMENTS, PACKAGES, None],
        [{}, {"A": "b", "C": "d e"}],
        [(), (80, 443)],
        [False, True],
    )
)


@pytest.mark.parametrize(
    ("mode", "deps", "env", "ports", "install"),
    _VARIANTS,
    ids=[
        f"{v[0].value}-{'reqs' if v[1] is REQUIREMENTS else 'pkgs' if v[1] else 'nodeps'}-{n}"
        for n, v in enumerate(_VARIANTS)
    ],
)
def test_layout_is_readable(mode, deps, env, ports, install):
    plan = make_plan(dependencies=deps, env=env, ports=ports, app=AppStep(install_project=install))
    text = render_dockerfile(plan, secrets=mode)
    lines = text.split("\n")
    assert text.endswith("\n") and not text.endswith("\n\n"), "one final newline, no blank line"
    assert "\n\n\n" not in text, "two blank lines in a row"
    assert all(line == line.rstrip() for line in lines), "trailing whitespace"
    assert "\t" not in text
    # After the two header lines, every comment leads to an instruction, not to a gap or the end.
    assert lines[2] == ""
    body = lines[3:]
    for number, line in enumerate(body):
        if line.startswith("#"):
            following = next((x for x in body[number + 1 :] if not x.startswith("#")), None)
            assert following, f"comment at the end: {line!r}"
            assert re.match(r"^[A-Z]+ ", following), (
                f"comment {line!r} is followed by {following!r}"
            )
    # Continuation lines are indented; instructions are not.
    for previous, line in zip(lines, lines[1:], strict=False):
        if previous.endswith("\\"):
            assert line.startswith("    "), line
        elif line and not line.startswith("#"):
            assert re.match(r"^[A-Z]+ ", line), line
    # Everything parses into known instructions, and the image ends with its entrypoint.
    known = {"FROM", "COPY", "RUN", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL", *PROGRAM}
    parsed = instructions(text)
    assert {kw for kw, _ in parsed} <= known
    assert parsed[-1][0] in PROGRAM


def test_default_dockerignore_keeps_out_what_must_not_reach_an_image():
    patterns = {
        line for line in DEFAULT_DOCKERIGNORE.splitlines() if line and not line.startswith("#")
    }
    for needed in (
        ".git",
        ".venv",
        "venv",
        ".env",
        "*.pem",
        "*.key",
        "**/__pycache__",
        "Dockerfile",
        ".dockerignore",
    ):
        assert needed in patterns


# --- web apps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_a_web_app_project_is_served_on_every_interface(tmp_path, write, framework):
    source = {
        "flask": "from flask import Flask\napp = Flask(__name__)\n",
        "fastapi": "from fastapi import FastAPI\napp = FastAPI()\n",
    }[framework]
    write(tmp_path, {"app.py": source, "requirements.txt": f"{framework}\n"})
    text = render_dockerfile(plan_project(load_project(tmp_path)))
    steps = instructions(text)
    server = "gunicorn" if framework == "flask" else "uvicorn"
    install = index_of(steps, "RUN", "pip install")
    # The server the requirements do not list is installed with them, and the file says so.
    words = " ".join(_last_command(steps[install][1]))
    assert words == f"pip install --no-cache-dir -r requirements.txt {server}"
    assert f"# {server}: added by cais, as requirements.txt does not list it." in text
    assert ("EXPOSE", "8000") in steps
    keyword, args = steps[-1]
    assert keyword == "CMD"
    command = json.loads(args)
    assert command[0] == server and "0.0.0.0" in " ".join(command)
    comment = text.split("\nCMD ")[0].rsplit("\n\n", 1)[1]
    assert comment.startswith(f"# {server}, a production ")
    assert "publish it with `-p 8000:8000`" in " ".join(comment.split())


def test_an_added_server_in_the_classic_builders_stage():
    deps = REQUIREMENTS.model_copy(update={"packages": ("gunicorn",), "added": ("gunicorn",)})
    text = render_dockerfile(make_plan(dependencies=deps), secrets=SecretsMode.STAGE)
    assert "--prefix=/install -r requirements.txt gunicorn" in text


def test_a_program_of_the_standard_library_installs_nothing(tmp_path, write):
    write(tmp_path, {"script.py": "import json\nprint(json.dumps({}))\n"})
    for mode in SecretsMode:
        text = render_dockerfile(plan_project(load_project(tmp_path)), secrets=mode)
        assert "pip install" not in text and "secret" not in text
        assert "requirements" not in text
        assert json.loads(instructions(text)[-1][1]) == ["python", "script.py"]
