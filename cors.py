"""Cross-origin requests: browser front ends on the origins that
DATASOURCES_CORS_ORIGINS lists may call the API (off by default).

flask-cors answers, on the API's requests only: its hook is one of our
blueprint's for this app, so a host's routes never get our headers, and an
app without origins runs no hook at all. Preflights reach `OPTIONS` on our
paths (a 204 with `Allow`, no token needed), which flask-cors completes.
"""

from flask_cors import CORS

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
REQUEST_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "WWW-Authenticate", "Allow"]
PREFLIGHT_SECONDS = 600  # how long a browser may keep a preflight's answer


class BlueprintHooks:
    """What flask-cors registers on: the hooks of one blueprint in one app.
    Flask keeps a blueprint's hooks per app, by its name, which is how one
    module-level blueprint serves apps that allow different origins; and
    flask-cors reads no `CORS_*` key of the host's config (`config`)."""

    config = {}

    def __init__(self, app, name):
        self.app, self.name = app, name

    def after_request(self, function):
        self.app.after_request_funcs.setdefault(self.name, []).append(function)
        return function


def init_app(app, blueprint_name, origins):
    """Answer cross-origin requests from `origins` ("*": any) on the
    blueprint's requests; nothing when there are none."""
    if not origins:
        return
    CORS(
        BlueprintHooks(app, blueprint_name),
        origins=list(origins),
        methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,  # bearer tokens, never cookies
        max_age=PREFLIGHT_SECONDS,
        send_wildcard="*" in origins,
        always_send=False,  # a request without an Origin is no browser's: no headers
    )
