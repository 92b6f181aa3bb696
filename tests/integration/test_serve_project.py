"""`cais serve PROJECT` from the folder above a training project: the project's newest model,
with the API contracts (`routes:`) of the project's own cais.yaml."""

from __future__ import annotations

import httpx

import cais
from tests.support import serve, text_model


def test_a_training_project_is_served_with_its_own_routes(tmp_path):
    home = tmp_path / "cais-home"
    cais.save_model(text_model(), "shop", home=home)
    cais.save_model(text_model(), "shop", home=home)
    project = tmp_path / "shop"
    project.mkdir()
    (project / "cais.yaml").write_text(
        "train: train.py\n"
        "routes:\n  - {path: /predizer_categoria, input: descricao, output: categoria}\n"
    )
    (tmp_path / "cais.yaml").write_text("routes: []\n")  # the folder the user is in
    process, base = serve("shop", home=home, cwd=tmp_path)
    try:
        kept = httpx.post(f"{base}/predizer_categoria", json={"descricao": "boneca de pano"})
        model = httpx.get(f"{base}/v2/models/shop").json()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert kept.status_code == 200, kept.text
    assert kept.json() == {"categoria": "brinquedo"}
    assert model["versions"] == ["2"]
