"""The course's model API: Flask, a joblib model loaded at start, one route.

    POST /predizer_categoria {"descricao": "..."}  ->  {"categoria": "..."}

Served by gunicorn with 4 sync workers (see the Dockerfile).
"""

import joblib
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load("model.joblib")


@app.route("/predizer_categoria", methods=["POST"])
def predizer_categoria():
    descricao = request.json["descricao"]
    categoria = model.predict([descricao])[0]
    return jsonify(categoria=categoria)
