"""OpenID Connect provider: authlib wiring (server.py), endpoints (views.py), rows (models.py)."""

from idp.oidc import server, views


def init_app(app) -> None:
    server.init_app(app)
    app.register_blueprint(views.bp)
