"""Sending the browser on to another site: by redirect, or by a form it posts at once (the
SAML HTTP-POST binding), optionally after loading logout pages in hidden iframes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Response, redirect, render_template


@dataclass(frozen=True)
class Destination:
    url: str
    fields: dict[str, str] | None = None  # posted to `url`; None: the browser follows `url`


def go(destination: Destination, frames: list[str] = (), *, title: str = "Continuing") -> Response:
    """A redirect when nothing else is needed; else a page that loads `frames` and then moves on
    (a page's load event waits for its iframes), with a Continue button should scripts be off."""
    if not frames and destination.fields is None:
        return redirect(destination.url, 303)
    nonce = secrets.token_urlsafe(16)
    page = render_template("navigation.html", destination=destination, frames=frames, nonce=nonce, title=title)
    response = Response(page, mimetype="text/html")
    policy = [f"default-src 'self'; script-src 'nonce-{nonce}'", "frame-ancestors 'none'"]
    if destination.fields is not None:
        policy.append(f"form-action {_origin(destination.url)}")
    if frames:
        policy.append(f"frame-src {' '.join(sorted({_origin(url) for url in frames}))}")
    response.headers["Content-Security-Policy"] = "; ".join(policy)
    return response


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
