"""What a bundle records about its model: `cais-model.json`, as a Pydantic model."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["METADATA_FILE", "BundleMetadata", "Tensor"]

METADATA_FILE = "cais-model.json"


class Tensor(BaseModel):
    """One input or output of the model, in Open Inference Protocol terms."""

    model_config = ConfigDict(frozen=True)

    name: str
    datatype: str  # BYTES, BOOL, INT64, FP64 …
    shape: list[int]  # -1 for the batch dimension


class BundleMetadata(BaseModel):
    """Everything needed to reproduce, check and serve a saved model."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    created: datetime
    python: str  # X.Y.Z of the interpreter that saved it (X.Y chosen for an imported pickle)
    # distribution → exact version: the running stack when saved, or, for an imported
    # pickle, the pins `pinned_by` explains (cais chose them; the file does not record them)
    packages: dict[str, str] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)  # extra ones the user named
    files: dict[str, str] = Field(default_factory=dict)  # relative path → sha256
    artifact: str = "model.joblib"
    model_class: str = ""  # module.QualName of the saved object
    # The modules the pickle's objects come from (sklearn.pipeline …): a serving image
    # byte-compiles what they import, and nothing else.
    modules: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)  # predict, predict_proba …
    inputs: list[Tensor] = Field(default_factory=list)
    outputs: list[Tensor] = Field(default_factory=list)
    input_example: object | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    # `cais models import`: where the pickle came from and what was read from it.
    imported: dict[str, str] = Field(default_factory=dict)
    predictor: str | None = None  # module:Class of the Predictor wrapping an imported pickle
    pinned_by: str = ""  # how an imported pickle's packages were chosen
    # Every global an imported pickle names (`module:name`), and those outside the allowlist
    # that the user trusted (`module.name`, `--trust`): loading refuses any other outside one.
    pickle_globals: list[str] | None = None
    trusted_globals: list[str] = Field(default_factory=list)
    cais_version: str = ""

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.version}"
