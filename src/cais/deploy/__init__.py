"""Deployments: standard files (Compose) generated from an image and what cais knows of its
model, and their start and stop where an engine is (`cais deploy`)."""
