"""Registries: image references, credentials, auth, and the client that pushes and pulls."""
