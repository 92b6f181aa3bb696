"""The one exception family of cais.

    CaisError                 message + optional hint; the CLI prints both, exits 1
    ├── ProjectError          a project folder or its cais.yaml cannot be used
    ├── BundleError           a model bundle cannot be saved, found, verified or loaded
    ├── PlanError             an ImagePlan cannot be made from what was given
    │   └── StackError        no wheels install the packages on that Python, or PyPI cannot say
    ├── EngineError           the Docker Engine cannot be reached or refused a call
    │   └── ImageNotFound     no such image in the engine
    │   └── ContainerNotFound no such container in the engine
    │   └── ContainerStartError a container did not start; exits 125, 126 or 127 as docker does
    ├── BuildError            a build failed (carries the failing step and its last lines)
    ├── BlobError             a blob is not in the cache, or not what its digest names
    ├── SinkError             an image cannot be written to an OCI layout or a tarball
    ├── DeployError           a deployment cannot be written, started or stopped (carries log lines)
    └── RegistryError         a registry refused or did not answer
        ├── AuthError         wrong or missing credentials
        ├── NotInRegistry     the registry has no such repository or tag
        ├── DigestMismatch    content does not match the digest it was asked or sent by
        └── CredentialsError  the credentials store (config.json, helper) failed

Messages are one sentence without a final period; hints say what to do.  HTTP status codes
do not belong here: whoever serves HTTP maps these classes to them.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BlobError",
    "BuildError",
    "BundleError",
    "CaisError",
    "ContainerNotFound",
    "ContainerStartError",
    "CredentialsError",
    "DeployError",
    "DigestMismatch",
    "EngineError",
    "ImageNotFound",
    "NotInRegistry",
    "PlanError",
    "ProjectError",
    "RegistryError",
    "SinkError",
    "StackError",
]


class CaisError(Exception):
    """Root of every error cais raises on purpose; the CLI exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, hint={self.hint!r})"


class ProjectError(CaisError):
    """A project folder, its cais.yaml or its requirements cannot be used."""


class BundleError(CaisError):
    """A model bundle cannot be saved, found, verified or loaded."""


class PlanError(CaisError):
    """An image plan cannot be made from the inputs."""


class StackError(PlanError):
    """No versions of the packages install from wheels on the target Python and platform, or
    the package index that would say so cannot be read."""


class EngineError(CaisError):
    """The Docker Engine is unreachable or refused a request."""


class ImageNotFound(EngineError):
    """The engine has no image of that name."""


class ContainerNotFound(EngineError):
    """The engine has no container of that name or id."""


class ContainerStartError(EngineError):
    """A container could not start; `exit_code` follows `docker run`: 125 for the engine's
    refusal, 126 for a command that cannot be executed, 127 for one that does not exist."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 125) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class BuildError(CaisError):
    """A build failed; `step` and `log_tail` say where and why, `packages` which requirements
    pip found nothing to install for (when that was the failure)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        step: str | None = None,
        log_tail: list[str] | None = None,
        packages: list[str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.log_tail = log_tail or []
        self.packages = packages or []


class BlobError(CaisError):
    """A blob is missing from the cache, or its content (cached or received) does not have
    the digest that names it; such content is never used."""


class SinkError(CaisError):
    """An image cannot be written where it was sent (an OCI layout folder, a tarball)."""


class DeployError(CaisError):
    """A deployment cannot be written, started or stopped; `log_tail` holds the last log lines
    of the service that failed."""

    def __init__(
        self, message: str, *, hint: str | None = None, log_tail: list[str] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail or []


class RegistryError(CaisError):
    """A registry refused a request or did not answer; `temporary` says a retry may help,
    `status` is the HTTP status the registry answered, when it answered."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        temporary: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.temporary = temporary
        self.status = status


class AuthError(RegistryError):
    """The registry refused the credentials, or none were given where some are needed."""


class NotInRegistry(RegistryError):
    """The registry has no such repository, tag or digest."""


class DigestMismatch(RegistryError):
    """Content read from or written to a registry does not have the digest it should: an error,
    never a silently different image."""


class CredentialsError(RegistryError):
    """The docker config file or a credential helper could not be read or written."""
