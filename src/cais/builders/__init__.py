"""Builders render an ImagePlan into an image; they never push.

`base` (what a build takes and gives), `dockerfile` (the renderer), `buildkit` and `classic`
(the two builders), `select` (which one to use).
"""
