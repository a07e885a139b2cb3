"""What a page's script asks about its session: when it ends (without counting as activity),
and that the person is active (pointer, keys, scrolling) though the page sends no request."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from directory import policy
from idp import context, web_session

bp = Blueprint("activity", __name__)


@bp.get("/session/status")
@web_session.passive
def status():
    """The deadlines by the server's clock, so a wrong clock in the browser changes nothing."""
    return _answer()


@bp.post("/session/activity")
def activity():
    """CSRF-checked; extends the inactivity deadline as any portal request does (the touch is
    throttled to once a minute, or a tenth of the timeout)."""
    return _answer()


def _answer():
    session = g.directory_session
    if session is None:
        state = "ended" if g.ended is not None else "signed_out"
        return jsonify(state=state, reason=g.ended.value if g.ended else None, message=g.get("ended_message")), 401
    now = context.now()
    deadline, reason = session.expiry
    return jsonify(
        state="active",
        server_time=_stamp(now),
        inactivity_deadline=_stamp(session.idle_deadline),
        absolute_deadline=_stamp(session.absolute_deadline),
        ends_by=reason.value,  # which deadline comes first: idle_timeout or absolute_timeout
        seconds_left=max(0, int((deadline - now).total_seconds())),
        inactivity_seconds=session.inactivity_seconds,
        # The page warns this long before the end, and reports activity at most this often
        # (more often would change nothing: the server records it at that rate).
        warning_seconds=policy.warning_lead(session.lifetime, reason).total_seconds(),
        activity_interval_seconds=policy.touch_interval(session.lifetime).total_seconds(),
    )


def _stamp(moment):
    return moment.isoformat() if moment is not None else None
