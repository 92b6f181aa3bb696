"""Registries: image references, credentials and login checks."""
