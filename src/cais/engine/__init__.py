"""The Docker Engine: connection, images, containers."""
