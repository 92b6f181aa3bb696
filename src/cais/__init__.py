"""cais: from a notebook to a published, running, monitored container."""

__version__ = "0.1.0"
