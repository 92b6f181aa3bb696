"""What a project's Python source says, read with `ast` (never run): the web app a script
defines, the development servers it starts on 127.0.0.1, and the modules it imports.
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LocalServer",
    "WebApp",
    "find_web_app",
    "imported_modules",
    "local_servers",
    "lists_package",
    "parse_script",
    "program_imports",
]

# The application classes cais serves, by module and class: (framework, interface).
_APP_CLASSES = {
    ("flask", "Flask"): ("Flask", "wsgi"),
    ("fastapi", "FastAPI"): ("FastAPI", "asgi"),
    ("starlette.applications", "Starlette"): ("Starlette", "asgi"),
    ("quart", "Quart"): ("Quart", "asgi"),
}
# Names by which Flask's documentation and most tutorials call an application factory.
_FACTORIES = ("create_app", "make_app")
# Hosts only the container itself can reach.
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class WebApp:
    """A web application a script defines at its top level, or through a factory."""

    framework: str  # Flask, FastAPI, Starlette, Quart
    interface: str  # "wsgi" or "asgi"
    script: str  # app.py
    attribute: str  # app, or create_app for a factory
    factory: bool
    line: int

    @property
    def server(self) -> str:
        """The production server: gunicorn for WSGI, uvicorn for ASGI."""
        return "gunicorn" if self.interface == "wsgi" else "uvicorn"

    @property
    def module(self) -> str:
        return Path(self.script).stem


@dataclass(frozen=True)
class LocalServer:
    """A call that starts a server only the container itself can reach."""

    script: str
    line: int
    call: str  # as written, such as app.run()
    host: str

    def __str__(self) -> str:
        return (
            f"`{self.script}` line {self.line}: `{self.call}` listens on {self.host}, which "
            f'nothing outside the container can reach; pass `host="0.0.0.0"`'
        )


def parse_script(path: Path) -> ast.Module | None:
    """The script's syntax tree; None when it cannot be read or parsed (the build, not cais,
    then says what is wrong with it)."""
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name → what it stands for, dotted (`Flask` → `flask.Flask`, `fa` → `fastapi`)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """What a name or attribute chain stands for (`flask.Flask`), through the imports."""
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def _app_class(call: ast.AST, names: dict[str, str]) -> tuple[str, str] | None:
    if not isinstance(call, ast.Call):
        return None
    dotted = _dotted(call.func, names) or ""
    module, _, cls = dotted.rpartition(".")
    return _APP_CLASSES.get((module, cls))


def find_web_app(script: str, tree: ast.Module) -> WebApp | None:
    """The web app `script` defines: an application assigned at the top level (`app` first),
    else a factory (`create_app`, `make_app`) that makes one and needs no argument."""
    names = _imported_names(tree)
    found: list[WebApp] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        kind = _app_class(getattr(node, "value", None), names)
        for target in targets:
            if kind and isinstance(target, ast.Name):
                found.append(WebApp(*kind, script, target.id, False, node.lineno))
    if found:
        return next((app for app in found if app.attribute == "app"), found[0])
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name not in _FACTORIES:
            continue
        arguments = node.args
        if len(arguments.args) + len(arguments.posonlyargs) > len(arguments.defaults) or any(
            default is None for default in arguments.kw_defaults
        ):
            continue  # a factory that needs arguments cannot be called by the server
        for inner in ast.walk(node):
            kind = _app_class(inner, names)
            if kind:
                return WebApp(*kind, script, node.name, True, node.lineno)
    return None


def local_servers(script: str, tree: ast.Module) -> list[LocalServer]:
    """Calls that start a development server on 127.0.0.1 (Flask's `app.run()` and
    `uvicorn.run(...)` without a host, or with a loopback one)."""
    names = _imported_names(tree)
    apps = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _app_class(node.value, names)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    # An app imported from another module of the project (`from web import app`).
    apps |= {name for name, dotted in names.items() if name in ("app", "application")}
    servers: list[LocalServer] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func, names) or ""
        if dotted == "uvicorn.run":
            host_position = None  # uvicorn.run(app, host=…): the first argument is the app
        elif (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "run"
            and (isinstance(node.func.value, ast.Name) and node.func.value.id in apps)
        ):
            host_position = 0  # Flask's app.run(host, port, …)
        else:
            continue
        host = next((k.value for k in node.keywords if k.arg == "host"), None)
        if host is None and host_position is not None and len(node.args) > host_position:
            host = node.args[host_position]
        if any(k.arg is None for k in node.keywords) and host is None:
            continue  # run(**options): the host may be among them
        if host is None:
            text = "127.0.0.1"
        elif isinstance(host, ast.Constant) and host.value in _LOOPBACK:
            text = host.value
        else:
            continue  # 0.0.0.0, or a value known only when it runs
        servers.append(LocalServer(script, node.lineno, ast.unparse(node), text))
    return servers


def imported_modules(tree: ast.Module) -> set[str]:
    """The top-level names of the modules `tree` imports (relative imports left out)."""
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules


# Folders whose modules never go into the image, or are not the program's.
_NOT_PROGRAM = {"tests", "test", "venv", ".venv", "__pycache__", "node_modules", "build", "dist"}
_MAX_FILES = 500


def program_imports(root: Path) -> dict[str, str] | None:
    """The modules the program's files import that are neither in the standard library nor
    the project's own, each with the first file importing it; None when a file cannot be
    parsed (or there are too many to read), as what it imports is then unknown."""
    files: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        # Pruned while walking: a virtualenv or data folder is never listed file by file.
        subfolders[:] = sorted(
            d for d in subfolders if d not in _NOT_PROGRAM and not d.startswith(".")
        )
        files += [
            Path(folder, n)
            for n in sorted(names)
            if n.endswith(".py") and not n.startswith("test_")
        ]
        if len(files) > _MAX_FILES:
            return None
    local = {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
    found: dict[str, str] = {}
    for path in files:
        tree = parse_script(path)
        if tree is None:
            return None
        for module in sorted(imported_modules(tree)):
            if module not in sys.stdlib_module_names and module not in local:
                found.setdefault(module, path.relative_to(root).as_posix())
    return found


def lists_package(requirements: Path | tuple[str, ...], package: str) -> bool:
    """Whether a requirements file (or a list of requirements) names `package`
    (`fastapi[standard]` brings uvicorn)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        lines = (
            requirements.read_text(encoding="utf-8").splitlines()
            if isinstance(requirements, Path)
            else requirements
        )
    except (OSError, UnicodeDecodeError):
        return False
    for line in lines:
        try:
            requirement = Requirement(line.split(" #")[0].strip())
        except InvalidRequirement:
            continue  # options (-r, --index-url), comments, paths
        name = canonicalize_name(requirement.name)
        if name == package or (
            package == "uvicorn" and name == "fastapi" and "standard" in requirement.extras
        ):
            return True
    return False
