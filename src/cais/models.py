"""`cais.save_model` and `cais.load_model`: the model store from Python."""

from __future__ import annotations

from pathlib import Path

from cais.bundle.store import ModelStore

__all__ = ["save_model", "load_model"]


def save_model(
    model: object,
    name: str,
    version: str | None = None,
    *,
    input_example: object | None = None,
    metrics: dict[str, float] | None = None,
    labels: dict[str, str] | None = None,
    requirements: list[str] | None = None,
    overwrite: bool = False,
    home: Path | None = None,
) -> str:
    """Save a model (anything with `predict`) as a versioned bundle; returns `name:version`.

    Parameters:
        model: a fitted estimator, pipeline, or `cais.Predictor`.
        name: the model's name in the store (lowercase letters, digits, . _ -).
        version: a string such as "1.0"; the next whole number when not given.
        input_example: a few rows like the model's input; recorded, and used to infer the
            input and output signature (the model must predict it).
        metrics: figures to record and show, such as {"accuracy": 0.97}.
        labels: free-form text labels.
        requirements: extra packages the image must install (pip requirement strings).
        overwrite: replace an existing `name:version` instead of refusing.
        home: the store's folder; default `$CAIS_HOME`, else `~/.cais`.
    """
    from cais.project import git_revision

    bundle = ModelStore(home).save(
        model,
        name,
        version,
        input_example=input_example,
        metrics=metrics,
        labels=labels,
        requirements=requirements,
        overwrite=overwrite,
        git_commit=git_revision(Path.cwd()),
    )
    return bundle.reference


def load_model(reference: str, *, home: Path | None = None) -> object:
    """Load `name[:version|alias]` after checking the sha256 of every file of its bundle."""
    return ModelStore(home).load(reference)
