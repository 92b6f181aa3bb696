"""Where an image goes: one module per destination, each with one verb, `write`."""
