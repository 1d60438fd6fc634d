"""The ceiling: a bare Flask app that answers every GET with a precomputed
list page (the bytes the service returned for its first page), with no
database and no authentication. What Flask and gunicorn can do at all."""

import os

from flask import Flask

with open(os.environ["BENCH_CEILING_PAGE"], "rb") as page_file:
    PAGE = page_file.read()

app = Flask(__name__)


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def page(path):
    return app.response_class(PAGE, mimetype="application/json")
