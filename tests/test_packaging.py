"""`pip install` of this repository beside a host that has its own `app.py`."""

import json
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "instance", "tests", "bench", "__pycache__", "*.egg-info", "build"
)

HOST_APP = """
from flask import Flask

import models
from datasources.app import init_app

app = Flask(__name__, instance_path=INSTANCE)


@app.get("/")
def home():
    return {"host": models.NAME}


init_app(app, identity=lambda: ("t_host", "editor"))
"""

PROBE = """
import json, sys
import app, models
client = app.app.test_client()
created = client.post("/api/v1/data-sources", json={"key": "k", "name": "n"})
listed = client.get("/api/v1/data-sources").get_json()
print(json.dumps({
    "home": client.get("/").get_json(),
    "created": created.status_code,
    "listed": [s["key"] for s in listed["data"]],
    "openapi": client.get("/api/v1/openapi.json").status_code,
    "app_file": app.__file__,
    "models_file": models.__file__,
    "ours": sorted(m for m in sys.modules if m.startswith("datasources")),
}))
"""


def test_installs_as_one_package_beside_a_host_with_its_own_app(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=SKIP)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(source)], capture_output=True, text=True
    )
    assert pip.returncode == 0, pip.stderr

    site = next((venv / "lib").glob("python3*/site-packages"))
    for name in ("app.py", "models.py", "schemas.py", "wsgi.py", "openapi.py"):
        assert not (site / name).exists(), f"{name} installed at top level"
    assert (site / "datasources" / "migrations" / "0001_initial.py").exists()

    host = tmp_path / "host"
    host.mkdir()
    (host / "app.py").write_text(f"INSTANCE = {str(tmp_path / 'instance')!r}\n" + HOST_APP)
    (host / "models.py").write_text('NAME = "the host\'s models"\n')
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PROBE], cwd=host, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert result["home"] == {"host": "the host's models"}
    assert result["created"] == 201 and result["listed"] == ["k"]
    assert result["openapi"] == 200
    assert result["app_file"] == str(host / "app.py")
    assert result["models_file"] == str(host / "models.py")
    assert "datasources.app" in result["ours"] and "datasources.models" in result["ours"]
