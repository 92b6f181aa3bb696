"""Train a product classifier (title → category), evaluate it, and save it with cais.

Run it with `cais train` (or `python train.py`). It makes its own small dataset, so it runs
anywhere; put your own data in its place when you have it.
"""

import random

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

import cais

WORDS = {
    "livro": ["livro", "romance", "edição", "capa dura", "autor", "volume", "contos", "poesia"],
    "brinquedo": [
        "boneca",
        "carrinho",
        "pelúcia",
        "quebra-cabeça",
        "lego",
        "infantil",
        "brinquedo",
    ],
    "maquiagem": ["batom", "base", "rímel", "sombra", "blush", "pó compacto", "delineador"],
    "game": ["jogo", "console", "controle", "playstation", "xbox", "nintendo", "edição gamer"],
}
EXTRAS = ["novo", "original", "azul", "kit", "promoção", "grande", "pequeno", "premium"]


def make_dataset(rows_per_category: int = 150, seed: int = 42) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for category, words in WORDS.items():
        for _ in range(rows_per_category):
            title = rng.sample(words, 2) + rng.sample(EXTRAS, 2)
            rng.shuffle(title)
            texts.append(" ".join(title))
            labels.append(category)
    return texts, labels


def train() -> str:
    texts, labels = make_dataset()
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=0.25, random_state=0, stratify=labels
    )
    model = Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2))),
            ("classifier", LogisticRegression(max_iter=1000)),
        ]
    )
    model.fit(x_train, y_train)
    accuracy = accuracy_score(y_test, model.predict(x_test))
    print(f"accuracy on held-out titles: {accuracy:.3f}")
    reference = cais.save_model(
        model,
        "{name}",
        input_example=["livro de poesia capa dura", "batom vermelho"],
        metrics={"accuracy": round(accuracy, 4)},
    )
    print(f"saved {reference}; serve it with `cais serve {name}`")
    return reference


if __name__ == "__main__":
    train()
