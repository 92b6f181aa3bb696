"""The HTTP server: a simple JSON API and the Open Inference Protocol V2 over the model store."""

# The oldest Python the server runs on, inside a serving image (its modules keep to 3.9: see
# the per-file target versions of ruff in pyproject.toml).
RUNTIME_PYTHON_MIN = (3, 9)
