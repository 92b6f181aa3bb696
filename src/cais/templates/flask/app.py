"""A small web API to put in a container: Flask, served in the image by gunicorn.

Try it here:  python app.py               (Flask's development server, http://127.0.0.1:8000)
In an image:  cais build . && cais run -d -p 8080:8000 IMAGE
"""

import os

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def hello():
    name = request.args.get("name", os.environ.get("NAME", "world"))
    return jsonify(message=f"Hello, {name}!")


@app.get("/health")
def health():
    return jsonify(status="ok")


if __name__ == "__main__":
    # Only `python app.py` runs this: in the image, gunicorn imports `app` instead.
    app.run(port=8000, debug=True)
