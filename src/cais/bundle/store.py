"""The model store: bundles kept by `name:version`, with aliases, under `$CAIS_HOME/models`.

    models/<name>/<version>/cais-model.json   metadata, with the sha256 of every file
    models/<name>/<version>/model.joblib      the artifact
    models/<name>/aliases.json                {"production": "2"}; `latest` is the newest version

A bundle is written into a hidden temporary folder and renamed into place, so an interrupted
save leaves no half bundle; an existing `name:version` is replaced only when asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from cais import __version__
from cais.bundle.metadata import METADATA_FILE, BundleMetadata
from cais.errors import BundleError

__all__ = [
    "Bundle",
    "Listed",
    "ModelStore",
    "default_home",
    "predictor_entry",
    "read_bundle",
    "split_reference",
]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")  # never a number: versions are
LATEST = "latest"
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle", ".sav", ".dat")


def default_home() -> Path:
    return Path(os.environ.get("CAIS_HOME") or Path.home() / ".cais")


def split_reference(reference: str) -> tuple[str, str | None]:
    """`name[:version|alias]` → (name, version or alias or None)."""
    name, _, version = reference.partition(":")
    if not _NAME.fullmatch(name):
        raise BundleError(
            f"`{name}` is not a model name",
            hint="use lowercase letters, digits and . _ - (such as `products`)",
        )
    if version and not _VERSION.fullmatch(version):
        raise BundleError(
            f"`{version}` is not a version or alias", hint="use letters, digits and . _ -"
        )
    return name, version or None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version_key(version: str) -> tuple:
    """Natural order: 2 < 10, 1.2 < 1.10."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[._-]", version))


@dataclass(frozen=True)
class Bundle:
    """A saved model: its folder and metadata."""

    path: Path
    metadata: BundleMetadata

    @classmethod
    def from_folder(cls, folder: Path) -> Bundle:
        """A bundle folder given directly (such as the one inside a serving image)."""
        if not (folder / METADATA_FILE).is_file():
            raise BundleError(
                f"`{folder}` is not a model bundle (it has no {METADATA_FILE})",
                hint="give a model reference such as `products:1`, or a bundle folder",
            )
        return read_bundle(folder)

    @property
    def reference(self) -> str:
        return self.metadata.reference

    @property
    def artifact(self) -> Path:
        return self.path / self.metadata.artifact

    def missing(self) -> list[str]:
        """The recorded files that are not there (cheap: no hashing)."""
        return [
            relative for relative in self.metadata.files if not (self.path / relative).is_file()
        ]

    def verify(self) -> None:
        """Recheck the sha256 of every file; refuse a tampered, truncated or missing one."""
        missing = self.missing()
        if missing:
            raise BundleError(
                f"The bundle `{self.reference}` is missing `{missing[0]}`",
                hint=f"save the model again, or remove it with `cais models rm {self.reference}`",
            )
        for relative, expected in self.metadata.files.items():
            if _sha256(self.path / relative) != expected:
                raise BundleError(
                    f"`{relative}` of the bundle `{self.reference}` does not match its recorded "
                    "sha256: it was changed or truncated after the save",
                    hint="never edit a bundle; save the model again under a new version",
                )

    def check_globals(self) -> None:
        """Refuse an imported pickle that names globals outside the allowlist which the user
        did not trust at import (or one imported before cais recorded them)."""
        metadata = self.metadata
        if metadata.pickle_globals is None:
            if metadata.imported:
                raise BundleError(
                    f"The imported model `{self.reference}` does not record what its pickle "
                    "runs when loaded",
                    hint="import the file again with `cais models import`",
                )
            return
        from cais.bundle.allowlist import outside

        pairs = [g.partition(":")[::2] for g in metadata.pickle_globals]
        untrusted = sorted(set(outside(pairs, self._own())) - set(metadata.trusted_globals))
        if untrusted:
            raise BundleError(
                f"The imported model `{self.reference}` would run "
                + ", ".join(f"`{g}`" for g in untrusted)
                + ", which was not trusted when it was imported",
                hint="import the file again, with --trust if you trust where it comes from",
            )

    def _own(self) -> set[str]:
        """`module.Name` of what the bundle's predictor file defines."""
        from cais.bundle.allowlist import defined_globals

        if not self.metadata.predictor:
            return set()
        return defined_globals(self.path / f"{self.metadata.predictor.partition(':')[0]}.py")

    def _guard(self) -> contextlib.AbstractContextManager:
        """What unpickling an imported pickle may name: what the import allowed or the user
        trusted (a model saved by cais is the user's own objects)."""
        if self.metadata.pickle_globals is None:
            return contextlib.nullcontext()
        from cais.bundle.allowlist import only_allowed

        return only_allowed(self.reference, self._own(), self.metadata.trusted_globals)

    def load(self) -> object:
        """Verify every file and what an imported pickle runs, then unpickle the model (and
        run a Predictor's `load()`); warn when the running package versions differ from the
        recorded ones."""
        self.verify()
        self.check_globals()
        _warn_on_skew(self.metadata)
        import joblib

        added = str(self.path) not in sys.path
        if added:  # a Predictor's source travels in the bundle
            sys.path.insert(0, str(self.path))
        from cais.bundle.predictor import Predictor

        try:
            with self._guard():
                # An imported pickle is wrapped by the user's Predictor, when it has one.
                model = self._predictor() if self.metadata.predictor else joblib.load(self.artifact)
                if isinstance(model, Predictor):
                    model.load()
            return model
        except BundleError:
            raise
        except Exception as exc:  # unpickling runs foreign code: any failure is possible
            raise BundleError(
                f"The model `{self.reference}` cannot be loaded: {type(exc).__name__}: {exc}",
                hint="load it with the Python and packages "
                + ("pinned for it" if self.metadata.pinned_by else "it was saved with")
                + f" (`cais models show {self.reference}` lists them)",
            ) from exc
        finally:
            if added:
                sys.path.remove(str(self.path))

    def _predictor(self) -> object:
        import importlib

        module, _, cls = self.metadata.predictor.partition(":")
        instance = getattr(importlib.import_module(module), cls)()
        instance.model_file = self.artifact  # its load() unpickles it
        return instance


def predictor_entry(source: Path) -> str:
    """`module:Class` of the one `cais.Predictor` subclass a file defines (read, not run)."""
    import ast

    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise BundleError(f"The predictor file `{source}` cannot be read: {exc}") from exc
    found = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).split(".")[-1] == "Predictor" for base in node.bases)
    ]
    if not source.stem.isidentifier():
        raise BundleError(
            f"`{source.name}` cannot be imported as a module",
            hint="name the file with letters, digits and _ only, such as my_predictor.py",
        )
    if len(found) != 1:
        raise BundleError(
            f"`{source}` defines {len(found) or 'no'} `cais.Predictor` subclasses; it needs one",
            hint="write one `class MyModel(cais.Predictor)` with `predict(self, batch)`",
        )
    return f"{source.stem}:{found[0]}"


def _warn_on_skew(metadata: BundleMetadata) -> None:
    import importlib.metadata

    differ = []
    for name, recorded in metadata.packages.items():
        try:
            running = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            running = "not installed"
        if running != recorded:
            differ.append(f"{name} {recorded} (running {running})")
    if differ:
        how = "is pinned to" if metadata.pinned_by else "was saved with"
        warnings.warn(
            f"`{metadata.reference}` {how} " + ", ".join(differ) + "; predictions may differ",
            RuntimeWarning,
            stacklevel=3,
        )


def read_bundle(folder: Path, reference: str | None = None) -> Bundle:
    """The bundle in `folder`, its metadata checked; one sentence when it cannot be read."""
    hint = (
        f"remove it with `cais models rm {reference}` and save it again"
        if reference
        else "give the folder of a bundle cais saved, unchanged"
    )
    reference = reference or str(folder)
    file = folder / METADATA_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"`{reference}` has no {METADATA_FILE}", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"The metadata of `{reference}` cannot be read: {exc}", hint=hint
        ) from exc
    try:
        metadata = BundleMetadata.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BundleError(
            f"The metadata of `{reference}` is damaged: {first['msg']}"
            + (f" at `{where}`" if where else ""),
            hint=hint,
        ) from None
    return Bundle(folder, metadata)


@dataclass(frozen=True)
class Listed:
    """A row of the store's listing: a version (empty for the model's alias file), its
    aliases, its metadata when it can be read, and what is wrong with it, if anything."""

    name: str
    version: str
    aliases: list[str]
    metadata: BundleMetadata | None
    problem: str | None


class ModelStore:
    """Bundles by name and version in one folder (default `$CAIS_HOME`, else `~/.cais`)."""

    def __init__(self, home: Path | None = None) -> None:
        self.root = Path(home or default_home()) / "models"

    def __repr__(self) -> str:
        return f"ModelStore(root={str(self.root)!r})"

    # -- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAME.fullmatch(p.name) and self.versions(p.name)
        )

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        # A folder without its metadata is a damaged version: listed, and removable.
        found = [p.name for p in folder.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
        return sorted(found, key=_version_key)

    def aliases(self, name: str) -> dict[str, str]:
        file = self.root / name / "aliases.json"
        if not file.is_file():
            return {}
        try:
            aliases = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            aliases = None
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise BundleError(
                f"The aliases of `{name}` (`{file}`) are damaged",
                hint="remove the file and tag the versions again with "
                f"`cais models tag {name}:VERSION ALIAS`",
            )
        return aliases

    def resolve(self, reference: str) -> str:
        """`name[:version|alias]` → `name:version`."""
        name, wanted = split_reference(reference)
        versions = self.versions(name)
        if not versions:
            raise BundleError(
                f"No model is named `{name}` in the store `{self.root}`",
                hint="list models with `cais models list`; save one with `cais.save_model`",
            )
        if wanted is None or wanted == LATEST:
            return f"{name}:{versions[-1]}"
        if wanted in versions:
            return f"{name}:{wanted}"
        alias = self.aliases(name).get(wanted)
        if alias in versions:
            return f"{name}:{alias}"
        raise BundleError(
            f"The model `{name}` has no version or alias `{wanted}`",
            hint=f"versions: {', '.join(versions)}",
        )

    def get(self, reference: str) -> Bundle:
        name, version = self.resolve(reference).split(":", 1)
        return read_bundle(self.root / name / version, f"{name}:{version}")

    def listing(self, name: str | None = None) -> list[Listed]:
        """Every version (of one model, or of all), damaged ones included with the reason:
        one damaged bundle or alias file never hides the others."""
        if name:
            self.resolve(name)  # an unknown or malformed name is an error, not an empty list
        found = []
        for model in [split_reference(name)[0]] if name else self.names():
            try:
                aliases, problem = self.aliases(model), None
            except BundleError as exc:
                aliases, problem = {}, exc.message
            versions = self.versions(model)
            if problem:
                found.append(Listed(model, "", [], None, problem))
            for version in versions:
                tags = [a for a, v in sorted(aliases.items()) if v == version]
                if version == versions[-1]:
                    tags.insert(0, LATEST)
                try:
                    bundle = read_bundle(self.root / model / version, f"{model}:{version}")
                except BundleError as exc:
                    found.append(Listed(model, version, tags, None, exc.message))
                    continue
                lost = bundle.missing()
                problem = f"`{lost[0]}` is missing" if lost else None
                found.append(Listed(model, version, tags, bundle.metadata, problem))
        return found

    def load(self, reference: str) -> object:
        return self.get(reference).load()

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        model: object,
        name: str,
        version: str | None = None,
        *,
        input_example: object | None = None,
        metrics: dict[str, float] | None = None,
        labels: dict[str, str] | None = None,
        requirements: list[str] | None = None,
        overwrite: bool = False,
        git_commit: str | None = None,
    ) -> Bundle:
        """Write `model` as a new bundle and return it."""
        from cais.bundle.introspect import (
            module_paths_of_object,
            packages_of_modules,
            signature_of,
            top_levels,
        )

        self._check_new_reference(name, version)
        metrics = _checked_metrics(metrics)
        if not callable(getattr(model, "predict", None)):
            raise BundleError(
                f"A `{type(model).__name__}` has no `predict` method, so it cannot be served",
                hint="save a fitted estimator, a pipeline, or a `cais.Predictor`",
            )
        methods = [m for m in ("predict", "predict_proba") if callable(getattr(model, m, None))]
        try:
            paths = module_paths_of_object(model)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise BundleError(
                f"The model cannot be pickled: {exc}",
                hint="define functions and classes the model uses at module level in a .py "
                "file (not as lambdas or in a notebook), then import them",
            ) from exc
        modules = top_levels(paths)
        if "__main__" in modules:
            raise BundleError(
                "Part of the model is defined in a notebook or in a script run as `__main__`, "
                "which another process cannot import",
                hint="move it into a .py file next to your notebook and import it from there",
            )
        predictions = None
        if input_example is not None:
            try:
                predictions = model.predict(input_example)  # type: ignore[attr-defined]
            except Exception as exc:
                raise BundleError(
                    f"The model cannot predict its own input example: {type(exc).__name__}: {exc}",
                    hint="pass an example shaped like the data the model was trained on",
                ) from exc
        inputs, outputs = (
            signature_of(input_example, predictions) if input_example is not None else ([], [])
        )

        def write(staging: Path) -> str:
            import joblib

            joblib.dump(model, staging / "model.joblib")
            source = _predictor_source(model)
            if source is not None:
                shutil.copy2(source, staging / source.name)
            return "model.joblib"

        return self._stage(
            name,
            version,
            write,
            overwrite=overwrite,
            python=".".join(str(v) for v in sys.version_info[:3]),
            packages=packages_of_modules(modules - {"__main__"}),
            modules=sorted(paths),
            requirements=list(requirements or []),
            model_class=f"{type(model).__module__}.{type(model).__qualname__}",
            methods=methods,
            inputs=inputs,
            outputs=outputs,
            input_example=_jsonable(input_example),
            metrics=metrics,
            labels=dict(labels or {}),
            git_commit=git_commit,
        )

    def adopt(
        self,
        file: Path,
        name: str,
        version: str | None = None,
        *,
        python: str,
        packages: dict[str, str],
        model_class: str,
        modules: list[str],
        imported: dict[str, str],
        pickle_globals: list[str],
        trusted_globals: list[str] | None = None,
        pinned_by: str = "",
        predictor: Path | None = None,
        input_example: object | None = None,
        labels: dict[str, str] | None = None,
        overwrite: bool = False,
    ) -> Bundle:
        """Keep a pickle made elsewhere as a bundle, byte for byte, with the Python and the
        packages chosen for it (`cais models import`); `predictor` wraps it when given."""
        from cais.bundle.introspect import signature_of

        self._check_new_reference(name, version)
        inputs = []
        if input_example is not None:
            try:
                inputs = signature_of(input_example, None)[0]
            except ImportError:  # numpy is not installed here: the server infers it anyway
                pass
        artifact = "model" + (file.suffix if file.suffix in _PICKLE_SUFFIXES else ".pkl")

        def write(staging: Path) -> str:
            shutil.copyfile(file, staging / artifact)
            if predictor is not None:
                shutil.copy2(predictor, staging / predictor.name)
            return artifact

        return self._stage(
            name,
            version,
            write,
            overwrite=overwrite,
            python=python,
            packages=packages,
            model_class=model_class,
            modules=modules,
            inputs=inputs,
            input_example=_jsonable(input_example),
            labels=dict(labels or {}),
            imported=imported,
            pickle_globals=list(pickle_globals),
            trusted_globals=list(trusted_globals or []),
            pinned_by=pinned_by,
            predictor=predictor_entry(predictor) if predictor is not None else None,
        )

    def _check_new_reference(self, name: str, version: str | None) -> None:
        split_reference(f"{name}:{version}" if version else name)
        if version == LATEST or (version and version in self.aliases(name)):
            raise BundleError(
                f"`{version}` names an alias of `{name}`, so it cannot be a version",
                hint="choose another version, such as 2 or 1.1",
            )

    def _stage(
        self,
        name: str,
        version: str | None,
        write: Callable[[Path], str],
        *,
        overwrite: bool,
        **fields: object,
    ) -> Bundle:
        """Write a bundle in a hidden folder (`write` puts the files there and returns the
        artifact's name), record the sha256 of every file, then rename it into place."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder))
        try:
            artifact = write(staging)
            files = {p.name: _sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
            chosen = version or self._next_version(name)
            metadata = BundleMetadata(
                name=name,
                version=chosen,
                created=datetime.now(timezone.utc),
                files=files,
                artifact=artifact,
                cais_version=__version__,
                **fields,
            )
            (staging / METADATA_FILE).write_text(
                metadata.model_dump_json(indent=2), encoding="utf-8"
            )
            target = self._publish(
                staging, folder, metadata, auto=version is None, overwrite=overwrite
            )
            return Bundle(target, metadata)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            try:
                folder.rmdir()  # only when empty: a failed first save leaves no model behind
            except OSError:
                pass

    def _next_version(self, name: str) -> str:
        numbers = [int(v) for v in self.versions(name) if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    def _publish(
        self, staging: Path, folder: Path, metadata: BundleMetadata, *, auto: bool, overwrite: bool
    ) -> Path:
        """Rename the finished bundle into place (atomic on one file system)."""
        target = folder / metadata.version
        if target.exists():
            if not overwrite:
                raise BundleError(
                    f"`{metadata.reference}` already exists in the store",
                    hint="save under a new version (or none, to take the next number), "
                    "or pass overwrite=True",
                )
            trash = folder / f".replaced-{uuid.uuid4().hex}"
            os.rename(target, trash)
            os.rename(staging, target)
            shutil.rmtree(trash, ignore_errors=True)
            return target
        try:
            os.rename(staging, target)
        except OSError as exc:  # another save took this version first
            raise BundleError(
                f"`{metadata.reference}` was saved by someone else at the same time",
                hint="save again" + (" (the next number is taken then)" if auto else ""),
            ) from exc
        return target

    def tag(self, reference: str, alias: str) -> str:
        """Point `alias` of the model at the version `reference` names; returns `name:version`."""
        resolved = self.resolve(reference)
        name, version = resolved.split(":", 1)
        if alias == LATEST or alias in self.versions(name) or not _ALIAS.fullmatch(alias):
            raise BundleError(
                f"`{alias}` cannot be an alias",
                hint="`latest` is always the newest version, and an alias starts with a letter "
                "so that it never looks like a version (such as `production`)",
            )
        aliases = self.aliases(name)
        aliases[alias] = version
        _write_json_atomically(self.root / name / "aliases.json", aliases)
        return resolved

    def untag(self, reference: str) -> str:
        """Remove the alias `name:alias` (not the version it points at); returns the
        `name:version` it pointed at."""
        name, alias = split_reference(reference)
        self.resolve(name)  # an unknown model is an error
        if alias is None:
            raise BundleError(
                "Name the alias to remove", hint=f"such as `cais models untag {name}:production`"
            )
        aliases = self.aliases(name)
        if alias is None or alias == LATEST or alias not in aliases:
            if alias in self.versions(name):
                raise BundleError(
                    f"`{name}:{alias}` is a version, not an alias",
                    hint=f"remove a version with `cais models rm {name}:{alias}`",
                )
            known = ", ".join(f"`{a}`" for a in sorted(aliases)) or "none"
            what = "`latest` always names the newest version; " if alias == LATEST else ""
            raise BundleError(
                f"`{name}` has no alias `{alias or ''}` to remove",
                hint=f"{what}its aliases: {known}",
            )
        version = aliases.pop(alias)
        _write_json_atomically(self.root / name / "aliases.json", aliases)
        return f"{name}:{version}"

    def points_at(self, reference: str) -> list[str]:
        """The aliases that point at the version `reference` resolves to."""
        name, version = self.resolve(reference).split(":", 1)
        return sorted(a for a, v in self.aliases(name).items() if v == version)

    def remove(self, reference: str) -> str:
        """Remove one version (and the aliases pointing at it); returns `name:version`."""
        name, wanted = split_reference(reference)
        if wanted is None or wanted == LATEST:
            raise BundleError(
                "Name the version to remove", hint=f"such as `cais models rm {name}:1`"
            )
        resolved = self.resolve(reference)
        version = resolved.split(":", 1)[1]
        try:
            aliases = self.aliases(name)
        except BundleError:  # a damaged alias file does not stop the removal of a version
            aliases = None
        folder = self.root / name
        trash = folder / f".removing-{uuid.uuid4().hex}"
        os.rename(folder / version, trash)
        shutil.rmtree(trash, ignore_errors=True)
        if not self.versions(name):
            shutil.rmtree(folder, ignore_errors=True)
        elif aliases is not None:
            kept = {a: v for a, v in aliases.items() if v != version}
            _write_json_atomically(folder / "aliases.json", kept)
        return resolved


def _predictor_source(model: object) -> Path | None:
    from cais.bundle.predictor import Predictor

    if not isinstance(model, Predictor):
        return None
    module = sys.modules.get(type(model).__module__)
    file = getattr(module, "__file__", None)
    if not file:
        raise BundleError(f"The source file of `{type(model).__name__}` cannot be found")
    return Path(file)


def _jsonable(example: object) -> object:
    if example is None:
        return None
    if hasattr(example, "columns") and hasattr(example, "to_dict"):  # a pandas DataFrame
        return example.to_dict(orient="list")  # type: ignore[call-arg]
    if hasattr(example, "tolist"):  # numpy
        return example.tolist()  # type: ignore[union-attr]
    try:
        json.dumps(example)
    except TypeError:
        return None
    return example


def _write_json_atomically(file: Path, data: object) -> None:
    fd, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
    os.replace(temporary, file)


def _checked_metrics(metrics: dict[str, float] | None) -> dict[str, float]:
    """The metrics as finite numbers: JSON has no NaN or infinity, and a bundle's metadata must
    read back as it was written."""
    checked: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BundleError(
                f"The metric `{key}` is `{value!r}`, not a number",
                hint='pass metrics as numbers, such as `metrics={"accuracy": 0.97}`',
            ) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise BundleError(
                f"The metric `{key}` is {number}, which a bundle cannot record",
                hint="leave it out, or pass the number it stands for",
            )
        checked[str(key)] = number
    return checked
