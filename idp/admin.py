"""Admin pages. Each view states its permission; without it the answer is 403."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from directory import durations, settings
from directory.policy import OnLimit
from idp import context, web_session

bp = Blueprint("admin", __name__, url_prefix="/admin")

UNIT_LABELS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@bp.get("/settings")
@web_session.require_permission("sessions:configure")
def session_settings():
    return _settings_page(_fields(settings.load()), {})


@bp.post("/settings")
@web_session.require_permission("sessions:configure")
def save_session_settings():
    new, errors = _parse(request.form, settings.load())
    if not errors:
        try:
            changed = settings.save(
                new, now=context.now(), actor=g.user, ip=context.client_ip(),
                apply_to_existing=request.form.get("apply_to_existing") == "on",
            )
        except settings.InvalidSettings as invalid:
            errors = invalid.errors
        else:
            flash(f"Saved {len(changed)} change(s)." if changed else "Nothing changed.", "info")
            return redirect(url_for(".session_settings"), 303)
    return _settings_page(request.form, errors, status=400)


def _settings_page(fields, errors: dict[str, str], status: int = 200):
    """The form showing `fields` (raw strings: stored values, or what was just submitted)."""
    return render_template(
        "admin/settings.html", fields=fields, errors=errors, defaults=settings.SessionSettings(), units=UNIT_LABELS
    ), status


def _fields(current: settings.SessionSettings) -> dict[str, str]:
    """Stored settings as the form's raw values; switched-off fields show their defaults."""
    defaults = settings.SessionSettings()
    fields = {
        "inactivity_enabled": "on" if current.inactivity else "",
        "persistent_login": "on" if current.persistent_login else "",
        "signout_apps_on_expiry": "on" if current.signout_apps_on_expiry else "",
        "max_sessions_enabled": "on" if current.max_sessions else "",
        "max_sessions": str(current.max_sessions or 3),
        "on_limit": current.on_limit.value,
        "signout_url": current.signout_url or "",
    }
    for name in ("inactivity", "absolute", "retention", "audit_retention"):
        count, unit = durations.largest_unit(getattr(current, name) or getattr(defaults, name))
        fields[f"{name}_value"], fields[f"{name}_unit"] = str(count), unit
    return fields


def _parse(form, current: settings.SessionSettings) -> tuple[settings.SessionSettings, dict[str, str]]:
    """The form's values over `current`; malformed fields are kept as they were and reported."""
    errors: dict[str, str] = {}
    values: dict = {
        "persistent_login": form.get("persistent_login") == "on",
        "signout_apps_on_expiry": form.get("signout_apps_on_expiry") == "on",
        "signout_url": form.get("signout_url", "").strip() or None,
    }
    for name in ("absolute", "retention", "audit_retention"):
        values[name] = duration_field(form, name, errors, getattr(current, name))
    values["inactivity"] = (
        duration_field(form, "inactivity", errors, current.inactivity or settings.SessionSettings().inactivity)
        if form.get("inactivity_enabled") == "on"
        else None
    )
    if form.get("max_sessions_enabled") != "on":
        values["max_sessions"] = None
    elif (count := _whole(form.get("max_sessions", ""))) is None:
        errors["max_sessions"] = "enter a whole number"
    else:
        values["max_sessions"] = count
    try:
        values["on_limit"] = OnLimit(form.get("on_limit", current.on_limit.value))
    except ValueError:
        errors["on_limit"] = "choose end-oldest or refuse"
    return replace(current, **values), errors


def _whole(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


def duration_field(form, name: str, errors: dict[str, str], fallback: timedelta) -> timedelta:
    unit = form.get(f"{name}_unit", "")
    count = _whole(form.get(f"{name}_value", ""))
    if unit not in durations.UNITS:
        errors[name] = "choose a unit"
    elif count is None:
        errors[name] = "enter a whole number"
    else:
        return timedelta(seconds=count * durations.UNITS[unit])
    return fallback
