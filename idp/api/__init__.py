"""The JSON API for scripts under /api/v1 (views.py), described by openapi.py."""

from flask import request

from idp.api import openapi, views  # noqa: F401 (openapi adds its route to the blueprint)


def init_app(app) -> None:
    app.register_blueprint(views.bp)
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith(f"{views.bp.name}."):
            view.sessionless = view.csrf_exempt = True  # bearer tokens, never cookies
    app.before_request(_unrouted)


def _unrouted():
    """Routing failed under /api/v1 (no such route, or not with this method): answer with a
    problem here, since blueprint error handlers never see requests that matched no route."""
    error = request.routing_exception
    if error is not None and (request.path + "/").startswith(views.bp.url_prefix + "/"):
        return views.http_problem(error)
    return None
