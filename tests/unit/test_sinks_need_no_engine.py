"""The image model and the file sinks work with no Docker Engine, and never import its SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from cais.image.archive import File, write_layer
    from cais.image.blobs import BlobStore
    from cais.image.image import append_layers, empty
    from cais.image.platform import Platform
    from cais.sinks import layout, tarball

    out = Path(sys.argv[1])
    layer = write_layer({"app/a.py": File(b"print(1)")}, store=BlobStore(out / "c"), created=0)
    image = append_layers(empty(Platform.parse("linux/arm64")), [layer])
    digest = layout.write(image, out / "layout", tag="1.0")
    image_id = tarball.write(image, out / "image.tar", tags=["app:1.0"])
    print(json.dumps([digest == image.digest, image_id == image.id,
                      sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "requests"))]))
    """
)


def test_layout_and_tarball_need_no_engine(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tmp_path)],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DOCKER_HOST": "unix:///nowhere/docker.sock",
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[true, true, []]"
    assert (tmp_path / "layout" / "index.json").is_file() and (tmp_path / "image.tar").is_file()
