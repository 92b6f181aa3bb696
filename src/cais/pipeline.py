"""CI/CD pipelines for a project: a GitHub Actions workflow or a GitLab CI file.

`subject_of(dir)` reads what the pipeline needs from a project folder (no engine, no
network), `render(subject, options)` writes the file as commented text a learner can read.
The jobs build with cais's own builder in an ordinary job, so no Docker daemon, no
docker-in-docker and no privileged runner is needed; credentials are only referenced, by
the CI's secret or variable names.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cais import __version__
from cais.errors import CaisError, ProjectError

__all__ = [
    "Deploy",
    "Kind",
    "PipelineOptions",
    "Provider",
    "Subject",
    "default_output",
    "image_version",
    "registry_image",
    "render",
    "subject_of",
]

# The Python the cais jobs run on (cais's own, not the image's: the image gets its own).
CAIS_PYTHON = "3.11"
# Tags are this long on both providers: GitLab's CI_COMMIT_SHORT_SHA has 8 characters.
SHORT_SHA = 8
KUBECTL_IMAGE = "bitnami/kubectl:1.30"


class Provider(str, Enum):
    github = "github"
    gitlab = "gitlab"


class Kind(str, Enum):
    project = "project"  # a project folder, built as it is
    training = "training"  # a training project: its job trains, its image serves the model
    model = "model"  # a folder a model bundle was saved into


class Deploy(str, Enum):
    none = "none"
    compose_ssh = "compose-ssh"
    kubectl = "kubectl"


@dataclass(frozen=True)
class PipelineOptions:
    provider: Provider
    registry: str | None = None  # HOST[/NAMESPACE]; None: the CI's own registry
    deploy: Deploy = Deploy.none


@dataclass(frozen=True)
class Subject:
    """What a pipeline builds: a project folder, a training project, or a bundle folder."""

    name: str  # the image's name (the project's or the model's)
    kind: Kind
    folder: str  # relative to the repository's root, as the jobs see it ("." for the root)
    python: str  # Python X.Y of the project's tests and training
    install: tuple[str, ...]  # pip arguments that install what the project imports
    tests: bool  # the project has tests for pytest
    root: Path  # the repository's root (where the pipeline file goes)


def subject_of(directory: Path) -> Subject:
    """What the pipeline of the project or model folder `directory` builds."""
    from cais.bundle.metadata import METADATA_FILE
    from cais.project import image_name_from, load_project, read_config, running_python
    from cais.resolve import PROJECT_FILES

    if not directory.is_dir():
        raise ProjectError(
            f"The folder `{directory}` does not exist"
            if not directory.exists()
            else f"`{directory}` is a file, not a project folder",
            hint="give the project folder (with cais.yaml or requirements.txt) or a saved "
            "model's folder",
        )
    folder = directory.resolve()
    root = _repository_root(folder)
    relative = folder.relative_to(root).as_posix()
    if (folder / METADATA_FILE).is_file():
        from cais.bundle.store import Bundle

        metadata = Bundle.from_folder(folder).metadata
        return Subject(
            name=image_name_from(metadata.name),
            kind=Kind.model,
            folder=relative,
            python=running_python(),
            install=(),
            tests=False,
            root=root,
        )
    if not any((folder / name).is_file() for name in PROJECT_FILES):
        raise ProjectError(
            f"`{directory}` is neither a project nor a saved model's folder",
            hint="give the folder with cais.yaml or requirements.txt (`cais init DIR` makes "
            "one), or a folder a model was saved into",
        )
    config = read_config(folder / "cais.yaml")
    if config.train:
        return Subject(
            name=config.name or image_name_from(folder.name),
            kind=Kind.training,
            folder=relative,
            python=config.python or running_python(),
            install=_install(folder, relative, config.requirements or "requirements.txt"),
            tests=_has_tests(folder),
            root=root,
        )
    project = load_project(directory)
    _check_daemonless(project, directory)
    return Subject(
        name=project.name,
        kind=Kind.project,
        folder=relative,
        python=project.python,
        install=_project_install(project, relative),
        tests=_has_tests(folder),
        root=root,
    )


def _check_daemonless(project, directory: Path) -> None:
    """The pipelines build with the OCI builder only: a project that needs the Docker
    builder would need the daemon they avoid."""
    from cais.builders.select import docker_reason

    reason = docker_reason(project)
    if reason is not None:
        raise ProjectError(
            f"`{directory}` builds only with the Docker builder ({reason}), and the pipelines "
            "build with no Docker daemon",
            hint="build it without what needs the engine (`cais build` names it), or write "
            "a pipeline with a Docker-capable runner of your own",
        )


def image_version(directory: Path) -> str:
    """The version an image of `directory` is tagged with: its model's (for a training
    project, the newest it saved), else the project's."""
    from cais.project import load_project
    from cais.resolve import resolve

    # Spelled as a path, so that it means the folder, never a saved model of that name.
    path = str(directory) if directory.is_absolute() else f"./{directory}"
    found = resolve(path, projects=True)
    if found.bundle is not None:
        return found.bundle.metadata.version
    return load_project(directory).version


def registry_image(registry: str, name: str) -> tuple[str, str]:
    """The registry host a login goes to and the image `HOST[/NAMESPACE]/NAME`."""
    from cais.registry.reference import DOCKER_HUB, parse_reference

    text = registry.strip().rstrip("/")
    try:
        reference = parse_reference(f"{text}/{name}", default_tag=None)
    except CaisError:
        reference = None
    if reference is None or reference.tag or reference.digest or not text:
        raise ProjectError(
            f"`{registry}` is not a registry to push to",
            hint="give HOST[:PORT][/NAMESPACE] in lowercase, such as `ghcr.io/acme` or "
            "`registry.example.com:5000/ml` (a Docker Hub user: `docker.io/USER`)",
        )
    host = "docker.io" if reference.registry == DOCKER_HUB else reference.registry
    return host, f"{text}/{name}"


def default_output(provider: Provider, root: Path) -> Path:
    name = ".github/workflows/cais.yml" if provider is Provider.github else ".gitlab-ci.yml"
    return root / name


def _repository_root(folder: Path) -> Path:
    """The git repository's top folder, or the folder itself outside a repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:  # no git: the folder is the repository's root
        return folder
    top = done.stdout.strip()
    return Path(top).resolve() if done.returncode == 0 and top else folder


def _has_tests(folder: Path) -> bool:
    """pytest's own discovery rule, on the folder and its `tests/`."""
    places = [folder, folder / "tests", folder / "test"]
    return any(
        path.is_file()
        for place in places
        if place.is_dir()
        for pattern in ("test_*.py", "*_test.py")
        for path in place.glob(pattern)
    )


def _in(relative: str, name: str) -> str:
    return name if relative == "." else f"{relative}/{name}"


def _install(folder: Path, relative: str, requirements: str) -> tuple[str, ...]:
    return ("-r", _in(relative, requirements)) if (folder / requirements).is_file() else ()


def _project_install(project, relative: str) -> tuple[str, ...]:
    from cais.project import DependencyKind

    dependencies = project.dependencies
    if dependencies.kind is DependencyKind.REQUIREMENTS and dependencies.file:
        return ("-r", _in(relative, dependencies.file))
    if dependencies.kind is DependencyKind.PYPROJECT:
        return (relative,) if dependencies.installable else dependencies.packages
    return ()


# ---------------------------------------------------------------------------------- text


def _s(value: str) -> str:
    """`value` as a YAML scalar that reads back as the same text."""
    import yaml  # only writing a pipeline needs it, not every command that defines one

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return text.removesuffix("\n...\n").removesuffix("\n")


def _lines(indent: int, *items: str) -> str:
    pad = " " * indent
    return "".join(f"{pad}{item}\n" if item else "\n" for item in items)


def _shell(*words: str) -> str:
    """Words joined for sh, quoted where needed (CI variables stay expanded)."""
    return " ".join(w if _plain(w) else f'"{w}"' for w in words)


def _plain(word: str) -> bool:
    return all(c.isalnum() or c in "-_./=:@+," for c in word)


def render(subject: Subject, options: PipelineOptions) -> str:
    if options.provider is Provider.github:
        return _github(subject, options)
    return _gitlab(subject, options)


def _header(subject: Subject, options: PipelineOptions, command: str) -> list[str]:
    what = {
        Kind.project: f"the project `{subject.name}`",
        Kind.training: f"the training project `{subject.name}`",
        Kind.model: f"the saved model `{subject.name}`",
    }[subject.kind]
    stages = ["test" if subject.tests else None, "train" if subject.kind is Kind.training else None]
    flow = " → ".join([s for s in stages if s] + ["build and push"])
    if options.deploy is not Deploy.none:
        flow += f" → deploy ({options.deploy.value}, from the default branch only)"
    return [
        f"# CI/CD for {what} in `{subject.folder}`, written by `{command}` (cais {__version__}).",
        f"# Jobs: {flow}.",
        "#",
        "# The image is built by cais's own builder: it reads the base image's layers from its",
        "# registry, installs the wheels with uv and pushes the result, all as an ordinary",
        "# process. So no Docker daemon is needed: no docker-in-docker service, no privileged",
        "# runner (which would hand every job root on the runner's machine), no docker socket.",
        "#",
        "# Each image is tagged with the commit (8 characters of its SHA); pipelines of the",
        "# default branch add the version (cais.yaml's `version:`, or the model's) and `latest`,",
        "# which is only an alias: deployments name the commit's tag.",
    ]


def _settings_note(base_registry: str, ca_cert: str) -> list[str]:
    return [
        f"#   {base_registry}  (optional) a Docker Hub mirror to read the python base",
        "#       image from, such as `mirror.example.com`",
        f"#   {ca_cert}  (optional) the CA certificate(s) of a proxy that intercepts TLS:",
        "#       pip and cais trust them; they never enter the image",
    ]


# ---------------------------------------------------------------------------------- GitLab


def _gitlab(subject: Subject, options: PipelineOptions) -> str:
    name, folder = subject.name, subject.folder
    if options.registry:
        host, image = registry_image(options.registry, name)
        login = (host, "$REGISTRY_USER", "$REGISTRY_PASSWORD")
        secrets = [
            f"#   REGISTRY_USER       the user of `{host}` that may push `{image}`",
            "#   REGISTRY_PASSWORD   its password or token (Masked and Protected)",
        ]
    else:
        image = f"$CI_REGISTRY_IMAGE/{name}"
        login = ("$CI_REGISTRY", "$CI_REGISTRY_USER", "$CI_REGISTRY_PASSWORD")
        secrets = [
            "#   (none for the registry: GitLab gives each job CI_REGISTRY, CI_REGISTRY_USER and",
            "#   CI_REGISTRY_PASSWORD, a token of this project's own container registry that",
            "#   expires with the job)",
        ]
    secrets += _settings_note("CAIS_BASE_REGISTRY", "CAIS_CA_CERT (type File)")
    secrets += _gitlab_deploy_secrets(options.deploy)
    text = "\n".join(
        _header(subject, options, "cais pipeline gitlab")
        + ["#", "# Set these in Settings → CI/CD → Variables:"]
        + secrets
    )
    stages = ["test"] if subject.tests else []
    stages += ["train"] if subject.kind is Kind.training else []
    stages += ["build"] + (["deploy"] if options.deploy is not Deploy.none else [])
    text += "\n\nstages:\n" + _lines(2, *(f"- {s}" for s in stages))
    text += "\nvariables:\n" + _lines(
        2,
        "# What the cais jobs install: the version that wrote this file.",
        f"CAIS_PACKAGE: {_s(f'cais=={__version__}')}",
        "# Where the image goes.",
        f"IMAGE: {_s(image)}",
        "# `cais login` keeps the job's login here, outside the checkout and its artifacts.",
        "DOCKER_CONFIG: /tmp/cais-docker",
        *(
            [
                "# The models `cais train` saves, handed from the train job to the build job.",
                f"CAIS_HOME: {_s('$CI_PROJECT_DIR/.cais')}",
            ]
            if subject.kind is Kind.training
            else []
        ),
        'PIP_DISABLE_PIP_VERSION_CHECK: "1"',
    )
    text += "\ndefault:\n" + _lines(
        2,
        f"image: {_s(f'python:{subject.python}-slim')}",
        "before_script:",
        "  # GitLab writes a File variable to a file and gives its path; pip reads PIP_CERT,",
        "  # and `cais build` takes it as its `--ca-cert` (kept out of the image's layers).",
        "  - " + _s('if [ -n "${CAIS_CA_CERT:-}" ]; then export PIP_CERT="$CAIS_CA_CERT"; fi'),
    )
    if subject.tests:
        text += "\ntest:\n" + _lines(
            2,
            "stage: test",
            "script:",
            "  - " + _s(_shell("pip", "install", *_test_packages(subject), "pytest")),
            "  - " + _s(_shell("python", "-m", "pytest", folder)),
        )
    if subject.kind is Kind.training:
        text += "\ntrain:\n" + _lines(
            2,
            "stage: train",
            "script:",
            "  - " + _s(_shell("pip", "install", "$CAIS_PACKAGE", *subject.install)),
            "  - " + _s(_shell("cais", "train", folder)),
            "artifacts:",
            "  paths:",
            "    - .cais/",
            "  expire_in: 1 week",
        )
    text += "\nbuild:\n" + _lines(
        2,
        "stage: build",
        "image: " + _s(f"python:{CAIS_PYTHON}-slim"),
        "script:",
        "  - " + _s(_shell("pip", "install", "$CAIS_PACKAGE")),
        "  # The password goes through a pipe, never onto a command line or into a file here.",
        "  - "
        + _s(
            f'printf "%s" "{login[2]}" | cais login "{login[0]}" -u "{login[1]}" --password-stdin'
        ),
        "  - " + _s(f'VERSION="$(cais pipeline version {folder})"'),
        "  - " + _s('TAGS="-t $IMAGE:$CI_COMMIT_SHORT_SHA"'),
        "  - "
        + _s(
            'if [ "$CI_COMMIT_BRANCH" = "$CI_DEFAULT_BRANCH" ]; then '
            'TAGS="$TAGS -t $IMAGE:$VERSION -t $IMAGE:latest"; fi'
        ),
        "  - " + _s(f"cais build {folder} --builder oci $TAGS --push"),
    )
    text += _gitlab_deploy(subject, options.deploy)
    return text


def _test_packages(subject: Subject) -> tuple[str, ...]:
    # Training projects' tests use cais (save_model, load_model).
    return (("$CAIS_PACKAGE",) if subject.kind is Kind.training else ()) + subject.install


def _gitlab_deploy_secrets(deploy: Deploy) -> list[str]:
    if deploy is Deploy.compose_ssh:
        return [
            "#   DEPLOY_HOST         user@host of the machine that runs the model (Docker Engine,",
            "#                       docker-compose and cais installed, logged in to the registry",
            "#                       once with `cais login` and a deploy token)",
            "#   SSH_PRIVATE_KEY     (type File, Protected) a key that user accepts",
            "#   SSH_KNOWN_HOSTS     (type File) the host's key: `ssh-keyscan HOST`",
        ]
    if deploy is Deploy.kubectl:
        return [
            "#   KUBECONFIG          (type File, Protected) a kubeconfig for the cluster; kubectl",
            "#                       reads the file this variable names",
        ]
    return []


def _deploy_commands(subject: Subject, deploy: Deploy, sha: str) -> list[str]:
    """The shell lines of the deploy job, the same on both providers."""
    from cais.deploy.kubernetes import object_name

    pinned = f"$IMAGE:{sha}"
    if deploy is Deploy.compose_ssh:
        remote = (
            f"mkdir -p {subject.name} && cd {subject.name} && cais pull {pinned} && "
            f"cais deploy compose {pinned} --up"
        )
        return [
            'install -m 700 -d ~/.ssh && cp "$SSH_KNOWN_HOSTS" ~/.ssh/known_hosts',
            f'ssh -i "$SSH_PRIVATE_KEY" "$DEPLOY_HOST" "{remote}"',
        ]
    manifests = _in(subject.folder, "k8s")
    name = object_name(subject.name)
    return [
        f"kubectl set image --local -f {manifests}/deployment.yaml {name}={pinned} -o yaml "
        f"> /tmp/deployment.yaml",
        f"mv /tmp/deployment.yaml {manifests}/deployment.yaml",
        f"kubectl apply -f {manifests}/",
        f"kubectl rollout status -f {manifests}/deployment.yaml --timeout=5m",
    ]


def _gitlab_deploy(subject: Subject, deploy: Deploy) -> str:
    if deploy is Deploy.none:
        return ""
    if deploy is Deploy.compose_ssh:
        head = [
            "image: " + _s(f"python:{CAIS_PYTHON}-slim"),
            "# cais on the host pulls the commit's image and runs it with docker-compose,",
            "# returning once it is healthy (else the job fails, naming the service).",
            "before_script:",
            "  - apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null",
            '  - chmod 600 "$SSH_PRIVATE_KEY"',
        ]
    else:
        head = [
            "image:",
            f"  name: {_s(KUBECTL_IMAGE)}",
            '  entrypoint: [""]',
            "# The manifests `cais deploy k8s` wrote into k8s/ (committed), with this",
            "# commit's image; kubectl waits until the new pods are ready.",
            "before_script: []",
        ]
    return "\ndeploy:\n" + _lines(
        2,
        "stage: deploy",
        *head,
        "script:",
        *(f"  - {_s(line)}" for line in _deploy_commands(subject, deploy, "$CI_COMMIT_SHORT_SHA")),
        "environment: production",
        "rules:",
        "  # Only the default branch deploys; other branches stop after the build.",
        '  - if: "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"',
    )


# ---------------------------------------------------------------------------------- GitHub


def _github(subject: Subject, options: PipelineOptions) -> str:
    name, folder = subject.name, subject.folder
    if options.registry:
        host, image = registry_image(options.registry, name)
        user, password = "${{ secrets.REGISTRY_USER }}", "${{ secrets.REGISTRY_PASSWORD }}"
        image_line = f'IMAGE="{image}"'
        secrets = [
            f"#   secrets.REGISTRY_USER      the user of `{host}` that may push `{image}`",
            "#   secrets.REGISTRY_PASSWORD  its password or token",
        ]
    else:
        host = "ghcr.io"
        user, password = "${{ github.actor }}", "${{ secrets.GITHUB_TOKEN }}"
        image_line = f'IMAGE="ghcr.io/${{GITHUB_REPOSITORY_OWNER,,}}/{name}"'
        secrets = [
            "#   (none for the registry: GitHub's GITHUB_TOKEN pushes to this repository's",
            "#   owner on ghcr.io, given `packages: write` below)",
        ]
    secrets += _settings_note("vars.CAIS_BASE_REGISTRY", "vars.CAIS_CA_CERT")
    secrets += _github_deploy_secrets(options.deploy)
    text = "\n".join(
        _header(subject, options, "cais pipeline github")
        + ["#", "# Set these in Settings → Secrets and variables → Actions:"]
        + secrets
    )
    text += "\n\nname: cais\n\non:\n" + _lines(2, "push:", "pull_request:")
    text += "\npermissions:\n" + _lines(2, "contents: read")
    text += "\nenv:\n" + _lines(
        2,
        "# What the cais jobs install: the version that wrote this file.",
        f"CAIS_PACKAGE: {_s(f'cais=={__version__}')}",
        "CAIS_BASE_REGISTRY: ${{ vars.CAIS_BASE_REGISTRY }}",
        'PIP_DISABLE_PIP_VERSION_CHECK: "1"',
    )
    text += "\njobs:\n"
    needs: list[str] = []
    ca = [
        "- name: Trust the proxy's CA (when vars.CAIS_CA_CERT is set)",
        "  if: ${{ vars.CAIS_CA_CERT != '' }}",
        "  env:",
        "    CAIS_CA_CERT: ${{ vars.CAIS_CA_CERT }}",
        "  # pip reads PIP_CERT; `cais build` takes it as its `--ca-cert`, out of the image.",
        "  run: |",
        '    printenv CAIS_CA_CERT > "$RUNNER_TEMP/ca.pem"',
        '    echo "PIP_CERT=$RUNNER_TEMP/ca.pem" >> "$GITHUB_ENV"',
    ]

    def setup(python: str) -> list[str]:
        return [
            "- uses: actions/checkout@v4",
            "- uses: actions/setup-python@v5",
            "  with:",
            f"    python-version: {_s(python)}",
            *ca,
        ]

    if subject.tests:
        text += _lines(
            2,
            "test:",
            "  runs-on: ubuntu-latest",
            "  steps:",
            *(f"    {line}" for line in setup(subject.python)),
            "    - run: " + _s(_shell("pip", "install", *_test_packages(subject), "pytest")),
            "    - run: " + _s(_shell("python", "-m", "pytest", folder)),
            "",
        )
        needs.append("test")
    if subject.kind is Kind.training:
        text += _lines(
            2,
            "train:",
            *(["  needs: [test]"] if needs else []),
            "  runs-on: ubuntu-latest",
            "  env:",
            "    CAIS_HOME: ${{ github.workspace }}/.cais",
            "  steps:",
            *(f"    {line}" for line in setup(subject.python)),
            "    - run: " + _s(_shell("pip", "install", "$CAIS_PACKAGE", *subject.install)),
            "    - run: " + _s(_shell("cais", "train", folder)),
            "    # The saved models, for the build job.",
            "    - uses: actions/upload-artifact@v4",
            "      with:",
            "        name: models",
            "        path: .cais/",
            "        include-hidden-files: true",
            "",
        )
        needs = ["train"]
    sha = "${GITHUB_SHA::" + str(SHORT_SHA) + "}"
    text += _lines(
        2,
        "build:",
        *([f"  needs: [{', '.join(needs)}]"] if needs else []),
        "  runs-on: ubuntu-latest",
        "  permissions:",
        "    contents: read",
        # GITHUB_TOKEN pushes to ghcr.io with this; another registry has its own login.
        *([] if options.registry else ["    packages: write"]),
        *(["  env:", "    CAIS_HOME: ${{ github.workspace }}/.cais"] if needs == ["train"] else []),
        "  outputs:",
        "    image: ${{ steps.push.outputs.image }}",
        "  steps:",
        *(f"    {line}" for line in setup(CAIS_PYTHON)),
        *(
            [
                "    - uses: actions/download-artifact@v4",
                "      with:",
                "        name: models",
                "        path: .cais/",
            ]
            if needs == ["train"]
            else []
        ),
        "    - run: " + _s(_shell("pip", "install", "$CAIS_PACKAGE")),
        "    # The secrets reach the command through the environment and a pipe only; GitHub",
        "    # masks them in the log.",
        "    - name: Log in to the registry",
        "      env:",
        f"        REGISTRY_USER: {user}",
        f"        REGISTRY_PASSWORD: {password}",
        "      run: "
        + _s(
            f'printenv REGISTRY_PASSWORD | cais login {host} -u "$REGISTRY_USER" --password-stdin'
        ),
        "    - name: Build and push",
        "      id: push",
        "      run: |",
        f"        {image_line}",
        f'        VERSION="$(cais pipeline version {folder})"',
        f'        TAGS="-t $IMAGE:{sha}"',
        '        if [ "$GITHUB_REF" = "refs/heads/${{ github.event.repository.default_branch }}" ]; then',
        '          TAGS="$TAGS -t $IMAGE:$VERSION -t $IMAGE:latest"',
        "        fi",
        f"        cais build {folder} --builder oci $TAGS --push",
        '        echo "image=$IMAGE" >> "$GITHUB_OUTPUT"',
    )
    text += _github_deploy(subject, options.deploy, sha)
    return text


def _github_deploy_secrets(deploy: Deploy) -> list[str]:
    if deploy is Deploy.compose_ssh:
        return [
            "#   vars.DEPLOY_HOST           user@host of the machine that runs the model (Docker",
            "#                              Engine, docker-compose and cais installed, logged in",
            "#                              to the registry once with `cais login`)",
            "#   secrets.SSH_PRIVATE_KEY    a key that user accepts",
            "#   vars.SSH_KNOWN_HOSTS       the host's key: `ssh-keyscan HOST`",
        ]
    if deploy is Deploy.kubectl:
        return ["#   secrets.KUBECONFIG         a kubeconfig for the cluster"]
    return []


def _github_deploy(subject: Subject, deploy: Deploy, sha: str) -> str:
    if deploy is Deploy.none:
        return ""
    if deploy is Deploy.compose_ssh:
        env = [
            "IMAGE: ${{ needs.build.outputs.image }}",
            "DEPLOY_HOST: ${{ vars.DEPLOY_HOST }}",
            "SSH_KEY: ${{ secrets.SSH_PRIVATE_KEY }}",
            "KNOWN_HOSTS: ${{ vars.SSH_KNOWN_HOSTS }}",
        ]
        files = [
            # ssh reads keys from files only: this one lives in the runner's temporary folder.
            'SSH_PRIVATE_KEY="$RUNNER_TEMP/deploy-key"',
            'SSH_KNOWN_HOSTS="$RUNNER_TEMP/known_hosts"',
            'printenv SSH_KEY > "$SSH_PRIVATE_KEY" && chmod 600 "$SSH_PRIVATE_KEY"',
            'printenv KNOWN_HOSTS > "$SSH_KNOWN_HOSTS"',
        ]
    else:
        env = ["IMAGE: ${{ needs.build.outputs.image }}", "KUBE: ${{ secrets.KUBECONFIG }}"]
        files = [
            'export KUBECONFIG="$RUNNER_TEMP/kubeconfig"',
            'printenv KUBE > "$KUBECONFIG" && chmod 600 "$KUBECONFIG"',
        ]
    script = files + _deploy_commands(subject, deploy, sha)
    return "\n" + _lines(
        2,
        "deploy:",
        "  needs: [build]",
        "  # Only pushes to the default branch deploy; other branches stop after the build.",
        "  if: ${{ github.event_name == 'push' && "
        "github.ref == format('refs/heads/{0}', github.event.repository.default_branch) }}",
        "  runs-on: ubuntu-latest",
        "  environment: production",
        "  env:",
        *(f"    {line}" for line in env),
        "  steps:",
        "    - uses: actions/checkout@v4",
        "    - run: |",
        *(f"        {line}" for line in script),
    )
