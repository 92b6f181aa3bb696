"""Plans: what an image must contain, decided without I/O."""

from cais.plan.image_plan import (
    APP_DIR,
    RUNTIME_USER,
    WEB_PORT,
    AppStep,
    Copy,
    DependencyStep,
    ImagePlan,
    LayerKind,
    User,
    default_base_image,
    parse_platform,
    plan_project,
)

__all__ = [
    "APP_DIR",
    "RUNTIME_USER",
    "WEB_PORT",
    "AppStep",
    "Copy",
    "DependencyStep",
    "ImagePlan",
    "LayerKind",
    "User",
    "default_base_image",
    "parse_platform",
    "plan_project",
]
