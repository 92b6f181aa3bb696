"""The trained model knows obvious titles (run with `python -m pytest tests`)."""

from train import make_dataset, train

import cais


def test_dataset_is_balanced():
    _, labels = make_dataset(rows_per_category=10)
    assert {label: labels.count(label) for label in set(labels)} == {
        "livro": 10,
        "brinquedo": 10,
        "maquiagem": 10,
        "game": 10,
    }


def test_trained_model_predicts_obvious_titles(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIS_HOME", str(tmp_path))
    model = cais.load_model(train())
    assert list(model.predict(["boneca de pelúcia", "console nintendo"])) == ["brinquedo", "game"]
