"""OpenID Connect Back-Channel Logout, end to end: browsers sign in to relying parties (FakeRP,
on authlib's client library), the directory session ends, and the outbox sends logout tokens.

The provider's outgoing logout POSTs are caught by `responses` (strict: an unexpected call
fails, an expected one that never came fails too); the FakeRP's own calls reach the app
in-process and are never intercepted. Each delivery round is run by hand, at the FrozenClock's
`now`, with no jitter, so every retry instant is exact.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
import responses
from sqlalchemy import event, select

from directory import logout, sessions
from directory.db import db
from directory.models import AppSession, AuditEvent, LogoutDelivery
from directory.policy import EndReason
from idp import background, create_app, delivery
from idp.oidc.models import Token
from tests.conftest import PASSWORD, START, BrowserClient, Portal
from tests.factories import make_oidc_client, make_user, session_rows, set_settings
from tests.peers import FakeRP, logout_token_of

RETENTION = timedelta(days=30)
INACTIVITY = timedelta(minutes=30)  # the default setting
FIRST_RETRY = timedelta(seconds=10)
DEFAULT_WINDOW = 86400  # seconds: LOGOUT_RETRY_WINDOW's default
RACE_ROUNDS = 5
MORE_THAN_A_BATCH = 51  # delivery claims at most 50 notices a round
NOTHING = {"sent": 0, "retrying": 0, "failed": 0}


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """One relying party signed in through a browser: its tokens and verified ID token claims."""

    name: str
    rp: FakeRP
    tokens: dict
    id_token: dict

    @property
    def logout_uri(self) -> str:
        return logout_uri(self.name)


def logout_uri(name: str) -> str:
    """The back-channel logout URI `make_oidc_client` registers by default."""
    return f"https://{name.lower()}.example/logout"


def register(app, name: str, *, single_logout: bool = True, **fields) -> FakeRP:
    """Register `name` (Registration `fields` on top of the defaults) and its FakeRP."""
    client, secret = make_oidc_client(name, **fields)
    client.app.single_logout = single_logout
    db.session.commit()
    return FakeRP(app, client.client_id, secret, redirect_uri=f"https://{name.lower()}.example/cb")


def sign_in(name: str, rp: FakeRP, browser, clock) -> SignedIn:
    """Alice signs in to `rp` through `browser` (password asked only without a session)."""
    result = rp.sign_in(browser, rp.authorization_url(), username="alice", password=PASSWORD)
    assert "code" in result, result
    tokens = rp.exchange(result["code"])
    assert "id_token" in tokens and "refresh_token" in tokens, tokens
    return SignedIn(name, rp, tokens, rp.verify_id_token(tokens["id_token"], nonce=rp.nonce, now=clock.now()))


def sign_in_to(app, clock, *names: str, browser=None) -> dict[str, SignedIn]:
    """Register each app and sign alice in to all of them through one browser session."""
    browser = browser or app.test_client()
    return {name: sign_in(name, register(app, name), browser, clock) for name in names}


def sign_out(browser) -> None:
    assert Portal(browser).logout().status_code == 303


def deliver(clock) -> dict[str, int]:
    """One delivery round at the clock's `now`, retries never shortened by jitter."""
    return delivery.deliver_due(now=clock.now(), jitter=lambda: 1.0)


def posted(http, since: int = 0) -> list[tuple[str, str]]:
    """(URL, logout_token) of each logout POST the provider made, from call `since` on."""
    return [(call.request.url, logout_token_of(call.request)) for call in http.calls[since:]]


def outbox() -> list[LogoutDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(LogoutDelivery).order_by(LogoutDelivery.id)))


def row_for(name: str) -> LogoutDelivery:
    (row,) = [row for row in outbox() if row.app_session.app.name == name]
    return row


def app_session_of(signed: SignedIn) -> AppSession:
    db.session.expire_all()
    return db.session.scalar(select(AppSession).where(AppSession.sid == signed.id_token["sid"]))


def token_row(access_token: str) -> Token:
    db.session.expire_all()
    return db.session.scalar(select(Token).where(Token.access_token_hash == sessions.digest(access_token)))


def assert_logout_token_for(signed: SignedIn, token: str, clock) -> dict:
    """The token verifies for this RP and names the session and subject of its ID token."""
    claims = signed.rp.verify_logout_token(token, now=clock.now())
    assert (claims["sid"], claims["sub"]) == (signed.id_token["sid"], signed.id_token["sub"])
    return claims


def assert_each_told_once(http, signed: list[SignedIn], clock, since: int = 0) -> None:
    """Exactly one logout POST per app since call `since`, carrying that app's session."""
    calls = posted(http, since)
    assert Counter(url for url, _ in calls) == {one.logout_uri: 1 for one in signed}
    by_url = dict(calls)
    for one in signed:
        assert_logout_token_for(one, by_url[one.logout_uri], clock)


def assert_refresh_refused(signed: SignedIn) -> None:
    answer = signed.rp.refresh(signed.tokens["refresh_token"])
    assert answer.get("error") == "invalid_grant", answer


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def alice(app):
    return make_user("alice")


@pytest.fixture
def browser(app):
    return app.test_client()


@pytest.fixture
def http():
    """The provider's outgoing HTTP: only registered URLs answer, and each must be called."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def crm(app, browser, clock) -> SignedIn:
    """Alice signed in to CRM (back-channel logout at https://crm.example/logout)."""
    return sign_in_to(app, clock, "CRM", browser=browser)["CRM"]


# --- signing out at the portal ---------------------------------------------------------------


def test_signing_out_sends_each_signed_in_app_one_verifiable_logout_token_naming_its_session(app, browser, clock, http):
    signed = sign_in_to(app, clock, "CRM", "Wiki", browser=browser)
    for one in signed.values():
        http.post(one.logout_uri, status=200)
    sign_out(browser)

    assert deliver(clock) == {**NOTHING, "sent": 2}

    assert_each_told_once(http, list(signed.values()), clock)
    assert signed["CRM"].id_token["sid"] != signed["Wiki"].id_token["sid"]
    assert [(row.app_session.app.name, row.channel, row.status, row.attempts, row.sent_at) for row in outbox()] == [
        ("CRM", "back", "sent", 1, START), ("Wiki", "back", "sent", 1, START),
    ]


def test_after_signing_out_the_apps_refresh_token_is_refused_as_invalid_grant(crm, browser):
    sign_out(browser)
    assert_refresh_refused(crm)


def test_after_signing_out_the_apps_access_token_is_refused_by_userinfo_and_introspected_inactive(crm, browser, clock):
    assert crm.rp.userinfo(crm.tokens["access_token"]).status_code == 200
    sign_out(browser)

    assert crm.rp.userinfo(crm.tokens["access_token"]).status_code == 401
    assert crm.rp.introspect(crm.tokens["access_token"]) == {"active": False}
    row = token_row(crm.tokens["access_token"])
    assert (row.app_session.ended_at, row.app_session.end_reason) == (clock.now(), "directory_signout")
    assert row.is_revoked()


def test_discovery_tells_relying_parties_that_back_channel_logout_with_sid_is_supported(app):
    metadata = register(app, "CRM").metadata
    assert metadata.get("backchannel_logout_supported") is True
    assert metadata.get("backchannel_logout_session_supported") is True


# --- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ({"status": 500}, "HTTP 500 from https://crm.example/logout"),
        ({"body": requests.ConnectionError("connection refused")}, "ConnectionError from https://crm.example/logout"),
    ],
    ids=["answering-500", "refusing-the-connection"],
)
def test_a_failed_notice_is_retried_after_ten_seconds_with_a_fresh_jti(crm, browser, clock, http, failure, error):
    http.post(crm.logout_uri, **failure)
    sign_out(browser)

    assert deliver(clock) == {**NOTHING, "retrying": 1}
    row = row_for("CRM")
    assert (row.status, row.attempts, row.next_attempt_at, row.last_error) == ("pending", 1, START + FIRST_RETRY, error)
    [(_, first)] = posted(http)
    first_claims = assert_logout_token_for(crm, first, clock)

    clock.advance(seconds=9)
    assert deliver(clock) == NOTHING
    assert len(http.calls) == 1 and row_for("CRM").attempts == 1

    clock.advance(seconds=1)
    http.replace(responses.POST, crm.logout_uri, status=200)
    assert deliver(clock) == {**NOTHING, "sent": 1}
    [(_, second)] = posted(http, since=1)
    assert assert_logout_token_for(crm, second, clock)["jti"] != first_claims["jti"]
    row = row_for("CRM")
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, START + FIRST_RETRY)


@pytest.mark.parametrize("configured", [None, 60], ids=["default-window", "configured-window"])
def test_a_notice_still_failing_when_the_retry_window_has_passed_is_marked_failed_and_audited(app, crm, alice, browser, clock, http, configured):
    if configured:
        app.config["LOGOUT_RETRY_WINDOW"] = configured
    window = configured or DEFAULT_WINDOW
    http.post(crm.logout_uri, status=503)
    sign_out(browser)
    deliver(clock)

    clock.advance(seconds=window - 1)
    assert deliver(clock) == {**NOTHING, "retrying": 1}
    retry_at = row_for("CRM").next_attempt_at
    assert retry_at == clock.now() + 2 * FIRST_RETRY  # the second failure doubles the wait

    clock.advance(seconds=20)
    assert deliver(clock) == {**NOTHING, "failed": 1}
    row = row_for("CRM")
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 503 from https://crm.example/logout")
    (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "logout.delivery_failed"))
    assert (event.at, event.target, event.target_user_id) == (retry_at, "CRM", alice.id)
    assert event.detail == {"channel": "back", "attempts": 3, "error": "HTTP 503 from https://crm.example/logout"}


def test_a_sent_or_failed_notice_is_never_sent_again_in_later_rounds(app, browser, clock, http):
    signed = sign_in_to(app, clock, "CRM", "Wiki", browser=browser)
    http.post(signed["CRM"].logout_uri, status=200)
    http.post(signed["Wiki"].logout_uri, status=500)
    sign_out(browser)
    deliver(clock)
    clock.advance(seconds=DEFAULT_WINDOW)
    deliver(clock)
    assert [row.status for row in outbox()] == ["sent", "failed"]
    calls = len(http.calls)

    for _ in range(3):
        clock.advance(days=2)
        assert deliver(clock) == NOTHING
    assert len(http.calls) == calls == 3
    assert [(row.status, row.attempts) for row in outbox()] == [("sent", 1), ("failed", 2)]


# --- durability and concurrency --------------------------------------------------------------


def test_a_restart_between_signing_out_and_delivering_loses_no_notice(app, crm, browser, clock, http):
    sign_out(browser)
    assert [row.status for row in outbox()] == ["pending"]
    http.post(crm.logout_uri, status=200)

    overrides = {key: app.config[key] for key in ("TESTING", "SECRET_KEY", "DATABASE_URL", "ISSUER", "CERTS_PATH")}
    restarted = create_app({**overrides, "SWEEP_INTERVAL": 0, "DELIVERY_INTERVAL": 0}, clock=clock)
    restarted.test_client_class = BrowserClient
    try:
        assert background.deliver_once(restarted) == {**NOTHING, "sent": 1}
    finally:
        with restarted.app_context():
            db.session.remove()
            db.engine.dispose()

    [(_, token)] = posted(http)
    assert_logout_token_for(crm, token, clock)
    assert [row.status for row in outbox()] == ["sent"]


def test_two_workers_racing_deliver_each_notice_exactly_once(app, clock, http):
    names = ("CRM", "Wiki", "Mail")
    rps = {name: register(app, name) for name in names}
    for name in names:
        http.post(logout_uri(name), status=200)
    barrier = threading.Barrier(2)

    def worker() -> dict[str, int]:
        with app.app_context():
            barrier.wait(timeout=30)
            return deliver(clock)

    for round_ in range(RACE_ROUNDS):
        browser = app.test_client()
        signed = [sign_in(name, rp, browser, clock) for name, rp in rps.items()]
        sign_out(browser)
        before = len(http.calls)
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = [future.result() for future in [pool.submit(worker) for _ in range(2)]]

        assert sum(count["sent"] for count in counts) == 3, (round_, counts)
        assert_each_told_once(http, signed, clock, since=before)
    rows = outbox()
    assert len(rows) == 3 * RACE_ROUNDS and {(row.status, row.attempts) for row in rows} == {("sent", 1)}


def test_a_worker_that_saw_a_notice_due_just_before_another_worker_retried_it_leaves_it_to_its_back_off(app, crm, browser, clock, http):
    """Worker B reads the outbox, then stalls just before leasing; meanwhile worker A sends
    the notice, which fails and is rescheduled 10 s on. B must not send it again now."""
    http.post(crm.logout_uri, status=500)
    sign_out(browser)
    b_read, a_done = threading.Event(), threading.Event()
    results: list[dict[str, int]] = []

    def stall_b_before_leasing(conn, cursor, statement, *args):
        if threading.current_thread() is worker_b and statement.startswith("UPDATE logout_deliveries SET lease_until"):
            b_read.set()
            a_done.wait(timeout=30)

    def run_b() -> None:
        with app.app_context():
            results.append(deliver(clock))

    worker_b = threading.Thread(target=run_b)
    event.listen(db.engine, "before_cursor_execute", stall_b_before_leasing)
    try:
        worker_b.start()
        assert b_read.wait(timeout=30)
        assert deliver(clock) == {**NOTHING, "retrying": 1}  # worker A
    finally:
        a_done.set()
        worker_b.join(timeout=30)
        event.remove(db.engine, "before_cursor_execute", stall_b_before_leasing)

    assert len(http.calls) == 1
    assert results == [NOTHING]
    row = row_for("CRM")
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, START + FIRST_RETRY)


# --- endings with no browser -----------------------------------------------------------------


def test_an_admin_ending_the_session_from_the_command_line_queues_and_delivers_back_channel_notices_only(app, clock, http):
    rp = register(app, "CRM", frontchannel_logout_uri="https://crm.example/front-logout")
    signed = sign_in("CRM", rp, app.test_client(), clock)
    (directory_session,) = session_rows()

    result = app.test_cli_runner().invoke(args=["sessions", "end", str(directory_session.id)])
    db.session.rollback()
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Ended session {directory_session.id}.\n"
    assert [(row.channel, row.status) for row in outbox()] == [("back", "pending")]

    http.post(signed.logout_uri, status=200)
    assert deliver(clock) == {**NOTHING, "sent": 1}
    [(_, token)] = posted(http)
    assert_logout_token_for(signed, token, clock)
    assert row_for("CRM").status == "sent"


def test_logout_worker_once_delivers_due_notices_and_prints_a_summary(app, clock, http):
    signed = sign_in_to(app, clock, "CRM", "Wiki")
    http.post(signed["CRM"].logout_uri, status=200)
    http.post(signed["Wiki"].logout_uri, status=500)
    (directory_session,) = session_rows()
    sessions.end(directory_session, EndReason.ENDED_BY_ADMIN, now=clock.now(), actor_label="test")

    runner = app.test_cli_runner()
    result = runner.invoke(args=["logout-worker", "--once"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "sent 1, retrying 1, failed 0\n"
    assert [row.status for row in outbox()] == ["sent", "pending"]
    assert len(http.calls) == 2

    again = runner.invoke(args=["logout-worker", "--once"])  # Wiki's retry is not due yet
    assert (again.exit_code, again.stdout, len(http.calls)) == (0, "", 2)


def test_logout_worker_once_delivers_every_due_notice_even_more_than_one_batch(app, browser, clock, http):
    Portal(browser).login()
    (directory_session,) = session_rows()
    for number in range(MORE_THAN_A_BATCH):
        client, _ = make_oidc_client(f"App{number}")
        logout.join(directory_session, client.app, subject="alice", now=clock.now())
        http.post(logout_uri(f"App{number}"), status=200)
    db.session.commit()
    sessions.end(directory_session, EndReason.ENDED_BY_ADMIN, now=clock.now(), actor_label="test")

    result = app.test_cli_runner().invoke(args=["logout-worker", "--once"])
    assert result.exit_code == 0, result.output
    assert len(http.calls) == MORE_THAN_A_BATCH
    assert [row.status for row in outbox()] == ["sent"] * MORE_THAN_A_BATCH


# --- expiry ----------------------------------------------------------------------------------


def test_directory_session_expiry_leaves_the_apps_signed_in_and_sends_no_notice_by_default(crm, browser, clock, http):
    clock.advance(minutes=31)

    home = browser.get("/")
    assert home.status_code == 302 and home.headers["Location"].startswith("/login")
    refreshed = crm.rp.refresh(crm.tokens["refresh_token"])
    assert "access_token" in refreshed and "refresh_token" in refreshed, refreshed
    assert crm.rp.userinfo(refreshed["access_token"]).status_code == 200

    assert deliver(clock) == NOTHING
    assert len(http.calls) == 0 and outbox() == []
    (directory_session,) = session_rows()
    assert directory_session.end_reason == "idle_timeout" and app_session_of(crm).ended_at is None


def test_refreshing_tokens_every_ten_minutes_does_not_extend_the_directory_session(crm, browser, clock):
    refresh_token = crm.tokens["refresh_token"]
    for _ in range(3):
        clock.advance(minutes=10)
        refreshed = crm.rp.refresh(refresh_token)
        assert "refresh_token" in refreshed, refreshed
        refresh_token = refreshed["refresh_token"]
        (directory_session,) = session_rows()
        assert (directory_session.last_activity_at, directory_session.expires_at) == (START, START + INACTIVITY)
    assert app_session_of(crm).last_used_at == START + 3 * timedelta(minutes=10)

    assert browser.get("/").status_code == 302
    (directory_session,) = session_rows()
    assert (directory_session.end_reason, directory_session.ended_at) == ("idle_timeout", START + INACTIVITY)


def test_with_sign_apps_out_on_expiry_the_sweep_queues_and_delivers_the_notice(app, browser, clock, http):
    set_settings(signout_apps_on_expiry=True)
    crm = sign_in_to(app, clock, "CRM", browser=browser)["CRM"]
    http.post(crm.logout_uri, status=200)
    clock.advance(minutes=31)

    assert sessions.sweep(now=clock.now(), retention=RETENTION) == (1, 0)
    assert deliver(clock) == {**NOTHING, "sent": 1}

    [(_, token)] = posted(http)
    assert_logout_token_for(crm, token, clock)
    assert row_for("CRM").status == "sent"
    assert_refresh_refused(crm)


# --- Single Logout switched off --------------------------------------------------------------


def test_an_app_with_single_logout_off_gets_no_notice_but_its_refresh_token_stops_working(app, browser, clock, http):
    crm = sign_in("CRM", register(app, "CRM", single_logout=False), browser, clock)
    sign_out(browser)

    assert deliver(clock) == NOTHING
    assert len(http.calls) == 0 and outbox() == []
    assert app_session_of(crm).end_reason == "directory_signout"
    assert_refresh_refused(crm)
