"""The HTTP server: a simple JSON API and the Open Inference Protocol V2 over the model store."""
