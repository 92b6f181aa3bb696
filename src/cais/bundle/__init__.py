"""Model bundles: the saved model, its metadata, and the store that keeps them by version."""
