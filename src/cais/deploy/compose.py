"""A Compose file for a model's API, with nginx in front and optionally Prometheus, and the
config files it mounts. No I/O but `write`: the files are text a learner can read.

The file follows the Compose Spec and stays within what Debian's docker-compose 1.29 accepts:
no top-level `version` or `name`, `depends_on` with `condition: service_healthy`,
`deploy.resources.limits.memory` (applied by 1.29 outside Swarm too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from cais.deploy.target import Target

__all__ = [
    "API",
    "ComposeOptions",
    "PROMETHEUS",
    "PROXY",
    "nginx_image",
    "prometheus_image",
    "render",
    "write",
]

API, PROXY, PROMETHEUS = "api", "proxy", "prometheus"
NGINX_CONF = "nginx/default.conf"
PROMETHEUS_CONF = "prometheus/prometheus.yml"
ENV_FILE = ".env"
# Settings, so a site can point them at its own mirror.
NGINX_IMAGE = "nginx:stable"
PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"
# cais's server refuses bodies over 10 MB itself; nginx's default (1 MB) would refuse sooner.
MAX_BODY = "10m"


def nginx_image() -> str:
    return os.environ.get("CAIS_NGINX_IMAGE") or NGINX_IMAGE


def prometheus_image() -> str:
    return os.environ.get("CAIS_PROMETHEUS_IMAGE") or PROMETHEUS_IMAGE


@dataclass(frozen=True)
class ComposeOptions:
    project: str  # docker-compose's project name, kept in .env beside the file
    port: int = 8080  # the host port the proxy (or, without one, the API) is published on
    proxy: bool = True
    monitoring: bool = False
    memory: str = "1g"  # the API's memory limit


def render(target: Target, options: ComposeOptions, compose_name: str) -> dict[str, str]:
    """The files of the deployment by path relative to the compose file's folder."""
    files = {
        compose_name: _compose(target, options),
        ENV_FILE: "# docker-compose reads the project name from here: `docker-compose up` in this\n"
        "# folder manages the same containers as `cais deploy compose --up`\n"
        f"COMPOSE_PROJECT_NAME={options.project}\n",
    }
    if options.proxy:
        files[NGINX_CONF] = _nginx(target)
    if options.monitoring:
        files[PROMETHEUS_CONF] = _prometheus(target)
    return files


def write(files: dict[str, str], folder: Path) -> list[Path]:
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == ENV_FILE and path.is_file():  # a folder's .env may hold other settings
            text = _merged_env(path.read_text(), text)
        path.write_text(text)
        written.append(path)
    return written


def _merged_env(existing: str, ours: str) -> str:
    """`existing` with our lines in place of its own project name (and of our comments)."""
    kept = [
        line
        for line in existing.splitlines()
        if not line.startswith("COMPOSE_PROJECT_NAME=") and line not in ours.splitlines()
    ]
    return "\n".join(kept) + ("\n" if kept else "") + ours


def _compose(target: Target, options: ComposeOptions) -> str:
    what = f"the model `{target.model}`" if target.model else f"the image `{target.image}`"
    lines = [
        f"# {what} as a Compose application, written by `cais deploy compose`",
        "#   start: docker-compose up -d     stop and remove: docker-compose down --volumes",
        "# Services start in health order: each waits until the ones it depends on are healthy.",
        "services:",
    ]
    depends = {API: {"condition": "service_healthy" if target.healthcheck else "service_started"}}
    lines += _service(API, _api_comment(target, options), _api(target, options))
    if options.proxy:
        lines += _service(
            PROXY,
            [
                "nginx in front of the API: the only service published on the host. It",
                "re-resolves `api` through Docker's DNS, so it answers 502 while the API is down",
                "and finds it again when it is back.",
            ],
            [
                (None, {"image": nginx_image()}),
                (None, {"restart": "unless-stopped"}),
                (None, {"ports": [f"{options.port}:80"]}),
                ("the generated config replaces the image's default site", None),
                (None, {"volumes": [f"./{NGINX_CONF}:/etc/nginx/conf.d/default.conf:ro"]}),
                (None, {"depends_on": depends}),
                ("SIGQUIT: nginx finishes the requests in flight before it exits", None),
                (None, {"stop_signal": "SIGQUIT"}),
                (None, _memory("128m")),
            ],
        )
    if options.monitoring:
        lines += _service(
            PROMETHEUS,
            [
                f"Prometheus scrapes the API's /metrics (config in {PROMETHEUS_CONF}).",
                "Not published: `docker-compose exec prometheus wget -qO- localhost:9090/api/v1/"
                "targets`",
                'shows the scrape; add `ports: ["9090:9090"]` here to open its web page.',
            ],
            [
                (None, {"image": prometheus_image()}),
                (None, {"restart": "unless-stopped"}),
                (
                    None,
                    {
                        "volumes": [
                            f"./{PROMETHEUS_CONF}:/etc/prometheus/prometheus.yml:ro",
                            "prometheus-data:/prometheus",
                        ]
                    },
                ),
                (
                    None,
                    {
                        "healthcheck": _health(
                            ("CMD", "wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready")
                        )
                    },
                ),
                (None, {"depends_on": depends}),
                (None, _memory("512m")),
            ],
        )
        lines += [
            "# The metrics Prometheus keeps outlive its container; `down --volumes` removes them.",
            *_yaml({"volumes": {"prometheus-data": {}}}, 0),
        ]
    return "\n".join(lines) + "\n"


def _api_comment(target: Target, options: ComposeOptions) -> list[str]:
    if options.proxy:
        reach = "Not published on the host: requests reach it through the proxy."
    else:
        reach = f"Published on the host's port {options.port}."
    pinned = (
        "The image is named by its digest too: a moved tag never changes what runs here."
        if target.pinned
        else f"The image was never pushed, so it has no digest; its id is {target.image_id}."
    )
    return [
        "The model's API, cais's server (health on /health/live and /health/ready).",
        reach,
        pinned,
    ]


def _api(target: Target, options: ComposeOptions) -> list[tuple[str | None, dict | None]]:
    parts: list[tuple[str | None, dict | None]] = [
        (None, {"image": target.image}),
        ("back after a crash or a restart of the engine, not after `docker stop`", None),
        (None, {"restart": "unless-stopped"}),
    ]
    if options.proxy:
        parts.append((None, {"expose": [str(target.port)]}))
    else:
        parts.append((None, {"ports": [f"{options.port}:{target.port}"]}))
    if target.healthcheck:
        parts += [
            ("the image's own check; healthy once the model is loaded and answers", None),
            (None, {"healthcheck": _health(target.healthcheck)}),
        ]
    parts += [
        ("a model that grows past this is stopped (and restarted) instead of the machine", None),
        (None, _memory(options.memory)),
    ]
    return parts


def _health(test: tuple[str, ...]) -> dict:
    # start_period: failures while the model loads do not count
    return {
        "test": list(test),
        "interval": "5s",
        "timeout": "3s",
        "retries": 3,
        "start_period": "15s",
    }


def _memory(limit: str) -> dict:
    return {"deploy": {"resources": {"limits": {"memory": limit}}}}


def _service(
    name: str, comment: list[str], parts: list[tuple[str | None, dict | None]]
) -> list[str]:
    lines = [f"  # {line}" for line in comment] + [f"  {name}:"]
    for why, mapping in parts:
        if why:
            lines.append(f"    # {why}")
        if mapping:
            lines += _yaml(mapping, 4)
    return lines


def _yaml(mapping: dict, indent: int) -> list[str]:
    text = yaml.safe_dump(mapping, sort_keys=False, default_flow_style=False, width=1000)
    return [" " * indent + line for line in text.splitlines()]


def _nginx(target: Target) -> str:
    return f"""\
# nginx in front of {target.model or target.image}, written by `cais deploy compose`.

server {{
    listen 80;

    # Docker's DNS server inside every Compose network. With the address in a variable,
    # nginx looks `api` up again every 2 s instead of once at start: a restarted API
    # container with a new address is found, and a stopped one (no longer in the DNS)
    # gives 502 at once instead of requests waiting on its old address.
    resolver 127.0.0.11 valid=2s ipv6=off;
    set $api http://{API}:{target.port};

    client_max_body_size {MAX_BODY};
    proxy_connect_timeout 3s;

    location / {{
        proxy_pass $api;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"""


def _prometheus(target: Target) -> str:
    config = {
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": target.name,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{API}:{target.port}"]}],
            }
        ],
    }
    header = (
        f"# Prometheus scraping {target.model or target.image}, written by `cais deploy compose`.\n"
        f"# `{API}` is the API's service name: Compose's DNS gives its container's address.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)
