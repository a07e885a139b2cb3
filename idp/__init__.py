"""The directory's web side: `create_app` wires config, database, clock, pages and commands."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from directory import durations
from directory.clock import SystemClock

ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict | None = None, *, clock=None) -> Flask:
    """Build the app from `IDP_*` variables with `overrides` on top; `clock` defaults to the system's."""
    from idp import (
        account,
        activity,
        admin,
        admin_apps,
        admin_audit,
        admin_saml,
        admin_sessions,
        admin_users,
        api,
        background,
        cli,
        config,
        database,
        oidc,
        portal,
        saml,
        web_session,
    )

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        instance_path=os.environ.get("IDP_INSTANCE_PATH", str(ROOT / "instance")),
    )
    app.config.update(config.load(os.environ, overrides, app.instance_path))
    app.extensions["idp.clock"] = clock or SystemClock()
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    database.init_app(app)
    web_session.init_app(app)
    app.register_blueprint(portal.bp)
    app.register_blueprint(activity.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_apps.bp)
    app.register_blueprint(admin_saml.bp)
    app.register_blueprint(admin_users.bp)
    app.register_blueprint(admin_sessions.bp)
    app.register_blueprint(admin_audit.bp)
    app.register_blueprint(account.bp)
    oidc.init_app(app)
    api.init_app(app)
    saml.init_app(app)
    cli.init_app(app)
    background.init_app(app)

    app.jinja_env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"
    app.jinja_env.filters["duration"] = durations.human

    app.after_request(_security_headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if type(error).__module__.startswith("werkzeug"):
            return render_template("error.html", error=error), error.code
        return error  # a protocol library's error keeps its own body and headers

    return app


def _security_headers(response):
    """No page of the directory may be framed, sniffed, cached or leak its URL elsewhere."""
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
