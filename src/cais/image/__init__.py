"""Images as values: media types, platforms, layers, images, indexes and the blob store."""
