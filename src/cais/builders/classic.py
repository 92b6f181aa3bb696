"""The engine's classic builder, driven through the Engine API (Docker SDK for Python).

Works with any engine and needs no docker CLI; it cannot mount secrets, so pip settings reach
a throw-away stage through the context and never the final image.
"""

from __future__ import annotations

import re
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

from cais.builders.base import BuildProgress, BuildRequest, BuildResult
from cais.builders.context import context_archive, ignore_patterns
from cais.builders.dockerfile import SECRETS_DIR
from cais.builders.pip_settings import PIP_CA_SECRET, PIP_CONF_SECRET
from cais.engine.client import engine_errors
from cais.errors import BuildError

__all__ = ["ClassicBuilder"]

_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")
_GENERATED_DOCKERFILE = ".cais.Dockerfile"


class ClassicBuilder:
    name = "classic"

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def build(self, request: BuildRequest, progress: BuildProgress) -> BuildResult:
        started = time.monotonic()
        extra: dict[str, str] = {}
        if request.dockerfile_text is not None:
            dockerfile_name = _GENERATED_DOCKERFILE
            extra[dockerfile_name] = request.dockerfile_text
        else:
            assert request.dockerfile is not None
            dockerfile_name = str(request.dockerfile.relative_to(request.context))
        if request.pip and request.dockerfile_text is not None:
            ca_path = f"/run/secrets/{PIP_CA_SECRET}"
            extra[f"{SECRETS_DIR}/{PIP_CONF_SECRET}"] = request.pip.pip_conf(ca_path)
            extra[f"{SECRETS_DIR}/{PIP_CA_SECRET}"] = request.pip.ca_bundle.decode()
        patterns = ignore_patterns(request.context, request.default_ignore)
        # The engine reads .dockerignore from the context too: it must skip the generated
        # Dockerfile, which is in the archive only to be read.
        keep = [f"!{SECRETS_DIR}", f"!{SECRETS_DIR}/*"] if request.pip else []
        ignore = [*patterns, dockerfile_name, ".dockerignore", *keep]
        extra[".dockerignore"] = "\n".join(ignore) + "\n"
        tail: deque[str] = deque(maxlen=25)
        step: str | None = None
        image_id: str | None = None
        with (
            context_archive(
                request.context,
                patterns=patterns,
                dockerfile_name=dockerfile_name,
                extra_files=extra,
            ) as archive,
            engine_errors(),
        ):
            stream = self.client.api.build(
                fileobj=archive,
                custom_context=True,
                dockerfile=dockerfile_name,
                tag=request.tags[0],
                platform=request.platform,
                buildargs=request.build_args or None,
                nocache=request.no_cache,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise BuildError(
                        f"The build failed at step `{step}`" if step else "The build failed",
                        step=step,
                        log_tail=[*tail, str(detail).strip()],
                        hint="fix the step above, then run the same command again",
                    )
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                text = chunk.get("stream")
                if not text:
                    continue
                for line in text.splitlines():
                    match = _STEP.match(line.strip())
                    if match:
                        step = f"[{match.group(1)}] {match.group(2)}"
                        tail.clear()
                        progress.step(step)
                    elif line.strip() and not line.startswith(" ---> "):
                        tail.append(line.rstrip())
                        progress.log(line.rstrip())
        if image_id is None:
            raise BuildError("The build ended without an image", log_tail=list(tail))
        with engine_errors(image=image_id):
            image = self.client.images.get(image_id)
            for extra_tag in request.tags[1:]:
                repository, _, tag = extra_tag.rpartition(":")
                image.tag(repository, tag)
        return BuildResult(
            image_id, request.tags, self.name, time.monotonic() - started, bool(request.pip)
        )
