"""The `flask` commands (idp/cli.py), driven through Flask's CLI runner on the app's database.

Each test checks what the operator sees (exit code, output, JSON) and what the database holds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text

from directory import accounts, settings
from directory.db import db
from directory.models import AuditEvent, DirectorySession, Role, User
from directory.policy import OnLimit
from directory.settings import SessionSettings
from idp.database import MIGRATIONS
from tests.conftest import PASSWORD, START, Portal
from tests.factories import audit_actions, make_user, session_rows, set_settings

NEW_PASSWORD = "a brand new passphrase"
PASSWORD_LINE = "Its password, shown only this once: "
DEFAULTS_JSON = {
    "inactivity": "30m",
    "absolute": "8h",
    "persistent_login": False,
    "max_sessions": None,
    "on_limit": "end-oldest",
    "signout_url": None,
    "retention": "30d",
    "signout_apps_on_expiry": False,
    "audit_retention": "365d",
}
SESSION_FIELDS = {
    "id", "user", "status", "signed_in_at", "last_activity_at", "expires_at", "persistent",
    "ip_address", "user_agent", "ended_at", "end_reason",
}


# --- helpers ---------------------------------------------------------------------------------


def cli(app, *args: str, input: str | None = None, env: dict | None = None):
    """Run `flask ARGS` and drop whatever the command left uncommitted, as its process exit
    would, so the rows read afterwards are the ones it stored."""
    result = app.test_cli_runner().invoke(args=list(args), input=input, env=env)
    db.session.rollback()
    return result


def ok(result) -> str:
    """The standard output of a command that must have succeeded quietly."""
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr == ""
    return result.stdout


def assert_error(result, *fragments: str) -> str:
    """Exit 1 with a single `Error: ...` line (naming each fragment) and nothing on stdout."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, to prove a refused command changed nothing."""
    db.session.rollback()
    return {
        table.name: [tuple(row) for row in db.session.execute(select(table).order_by(*table.primary_key.columns))]
        for table in db.metadata.sorted_tables
    }


def sign_in(app, username: str = "alice", password: str = PASSWORD) -> Portal:
    """A new browser signed in as `username`."""
    browser = Portal(app.test_client())
    assert browser.login(username, password).status_code == 303
    return browser


def make_users(*names: str) -> list[User]:
    return [make_user(name) for name in names]


def latest_session() -> DirectorySession:
    return session_rows()[-1]


def user_named(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def audit_events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def listed(app, *args: str) -> list[dict]:
    return json.loads(ok(cli(app, "sessions", "list", "--json", *args)))


def sent_to_sign_in(browser: Portal) -> bool:
    response = browser.client.get("/")
    return response.status_code == 302 and urlsplit(response.location).path == "/login"


def _drop_alembic_version() -> None:
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()


@pytest.fixture
def empty_app(make_app):
    """An app on a database without any table, as before the first `setup`.

    Alembic's env.py points the root logger at the runner's (soon closed) stderr; the
    root logger is put back afterwards so later tests log normally.
    """
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    app = make_app()
    with app.app_context():
        db.drop_all()
        _drop_alembic_version()
        yield app
        db.session.rollback()
        _drop_alembic_version()  # leave the migrated tables; the next fixture rebuilds them anyway
    root.setLevel(level)
    root.handlers[:] = handlers


# --- users create ----------------------------------------------------------------------------


def test_users_create_reads_the_password_from_stdin_and_stores_a_case_folded_username_with_the_given_role(app):
    result = cli(
        app, "users", "create", "Bob", "--password-stdin", "--email", "bob@example.org", "--role", "session-manager",
        input=f"{PASSWORD}\n",
    )

    assert ok(result) == "Created user 'bob' with role session-manager.\n"
    bob = user_named("bob")
    assert (bob.email, bob.role.name, bob.created_at) == ("bob@example.org", "session-manager", START)
    assert accounts.authenticate("bob", PASSWORD)[0].id == bob.id
    [event] = audit_events("user.created")
    assert (event.actor, event.target_user_id) == ("cli", bob.id)


def test_users_create_takes_the_password_from_the_option_and_defaults_to_role_user(app):
    ok(cli(app, "users", "create", "carol", "--password", PASSWORD))

    carol = user_named("carol")
    assert carol.role.name == "user"
    assert accounts.authenticate("carol", PASSWORD)[0].id == carol.id


def test_users_create_makes_a_user_who_can_sign_in_at_the_portal(app, portal):
    ok(cli(app, "users", "create", "dave", "--password-stdin", input=f"{PASSWORD}\n"))

    assert portal.login("dave", PASSWORD).status_code == 303
    assert [row.user.username for row in session_rows()] == ["dave"]


def test_users_create_refuses_an_existing_username_in_another_case(app):
    make_user("alice")
    before = snapshot()

    result = cli(app, "users", "create", "ALICE", "--password", PASSWORD)

    assert_error(result, "'alice' already exists")
    assert user_count() == 1
    assert snapshot() == before


def test_users_create_refuses_an_unknown_role(app):
    before = snapshot()

    result = cli(app, "users", "create", "erin", "--password", PASSWORD, "--role", "superuser")

    assert_error(result, "'superuser'")
    assert user_named("erin") is None
    assert snapshot() == before


def test_users_create_refuses_a_password_shorter_than_eight_characters(app):
    before = snapshot()

    result = cli(app, "users", "create", "erin", "--password-stdin", input="1234567\n")

    assert_error(result, "8 to 1024 characters")
    assert snapshot() == before


def test_users_create_refuses_both_password_options_at_once(app):
    before = snapshot()

    result = cli(app, "users", "create", "erin", "--password", PASSWORD, "--password-stdin", input=f"{PASSWORD}\n")

    assert_error(result, "--password", "--password-stdin")
    assert snapshot() == before


# --- users set-password ----------------------------------------------------------------------


def test_users_set_password_makes_the_old_password_fail_and_the_new_one_work(app, portal):
    make_user("alice")

    result = cli(app, "users", "set-password", "Alice", "--password-stdin", input=f"{NEW_PASSWORD}\n")

    assert ok(result) == "Password of 'alice' changed; their sessions have ended.\n"
    assert portal.login("alice", PASSWORD).status_code == 401
    assert portal.login("alice", NEW_PASSWORD).status_code == 303
    assert [event.actor for event in audit_events("user.password_changed")] == ["cli"]


def test_users_set_password_ends_that_users_live_sessions_and_no_one_elses(app, clock):
    alice, bob = make_users("alice", "bob")
    browsers = [sign_in(app, "alice"), sign_in(app, "alice")]
    sign_in(app, "bob")
    changed_at = clock.advance(minutes=5)

    ok(cli(app, "users", "set-password", "alice", "--password-stdin", input=f"{NEW_PASSWORD}\n"))

    assert [(row.end_reason, row.ended_at) for row in session_rows(alice)] == [("password_changed", changed_at)] * 2
    assert [row.ended_at for row in session_rows(bob)] == [None]
    assert all(sent_to_sign_in(browser) for browser in browsers)


def test_users_set_password_without_stdin_prompts_twice_for_the_new_password(app, portal):
    make_user("alice")

    result = cli(app, "users", "set-password", "alice", input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")

    assert ok(result) == "Password: \nRepeat for confirmation: \nPassword of 'alice' changed; their sessions have ended.\n"
    assert portal.login("alice", NEW_PASSWORD).status_code == 303


def test_users_set_password_for_an_unknown_user_fails(app):
    before = snapshot()

    result = cli(app, "users", "set-password", "nobody", "--password-stdin", input=f"{NEW_PASSWORD}\n")

    assert_error(result, "'nobody'")
    assert snapshot() == before


def test_users_set_password_refuses_a_short_password_and_keeps_the_old_one_and_the_sessions(app, portal):
    make_user("alice")
    sign_in(app, "alice")
    before = snapshot()

    result = cli(app, "users", "set-password", "alice", "--password-stdin", input="short\n")

    assert_error(result, "8 to 1024 characters")
    assert snapshot() == before
    assert portal.login("alice", PASSWORD).status_code == 303


# --- settings show ---------------------------------------------------------------------------


def test_settings_show_prints_the_defaults_as_json(app):
    assert json.loads(ok(cli(app, "settings", "show"))) == DEFAULTS_JSON


def test_settings_show_prints_stored_settings_with_durations_written_compactly(app):
    set_settings(inactivity=None, absolute=timedelta(minutes=90), max_sessions=3, on_limit=OnLimit.REFUSE)

    shown = json.loads(ok(cli(app, "settings", "show")))

    assert shown == {**DEFAULTS_JSON, "inactivity": None, "absolute": "90m", "max_sessions": 3, "on_limit": "refuse"}


# --- settings set ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "field", "stored"),
    [
        ("--inactivity", "45m", "inactivity", timedelta(minutes=45)),
        ("--inactivity", "90s", "inactivity", timedelta(seconds=90)),
        ("--inactivity", "off", "inactivity", None),
        ("--absolute", "12h", "absolute", timedelta(hours=12)),
        ("--absolute", "7d", "absolute", timedelta(days=7)),
        ("--persistent-login", "on", "persistent_login", True),
        ("--max-sessions", "3", "max_sessions", 3),
        ("--on-limit", "refuse", "on_limit", OnLimit.REFUSE),
        ("--signout-url", "https://example.org/signed-out", "signout_url", "https://example.org/signed-out"),
        ("--signout-url", "/goodbye", "signout_url", "/goodbye"),
        ("--retention", "7d", "retention", timedelta(days=7)),
        ("--signout-apps-on-expiry", "on", "signout_apps_on_expiry", True),
    ],
)
def test_settings_set_stores_the_one_option_given_and_keeps_the_others(app, option, value, field, stored):
    result = cli(app, "settings", "set", option, value)

    assert ok(result) == f"Changed: {field}.\n"
    assert settings.load() == replace(SessionSettings(), **{field: stored})


@pytest.mark.parametrize(
    ("option", "value", "field", "default"),
    [
        ("--max-sessions", "off", "max_sessions", None),
        ("--persistent-login", "off", "persistent_login", False),
        ("--signout-url", "", "signout_url", None),
    ],
)
def test_settings_set_switches_an_option_back_off(app, option, value, field, default):
    set_settings(max_sessions=5, persistent_login=True, signout_url="/bye")

    ok(cli(app, "settings", "set", option, value))

    assert getattr(settings.load(), field) == default


def test_settings_set_audits_each_changed_field_with_actor_cli(app):
    result = cli(app, "settings", "set", "--absolute", "12h", "--max-sessions", "5", "--retention", "30d")

    assert ok(result) == "Changed: absolute, max_sessions.\n"
    events = audit_events("settings.changed")
    assert [(event.actor, event.target, event.detail) for event in events] == [
        ("cli", "absolute", {"old": "8h", "new": "12h"}),
        ("cli", "max_sessions", {"old": None, "new": 5}),
    ]


def test_settings_set_with_the_current_values_changes_nothing(app):
    result = cli(app, "settings", "set", "--inactivity", "30m", "--on-limit", "end-oldest")

    assert ok(result) == "Nothing changed.\n"
    assert audit_actions() == []
    assert settings.load() == SessionSettings()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--absolute", "1m"], "absolute"),
        (["--absolute", "366d"], "absolute"),
        (["--inactivity", "59s"], "inactivity"),
        (["--inactivity", "91d"], "inactivity"),
        (["--inactivity", "9h"], "inactivity"),  # longer than the 8h absolute timeout
        (["--inactivity", "2h", "--absolute", "1h"], "inactivity"),
        (["--max-sessions", "101"], "max_sessions"),
        (["--max-sessions", "0"], "max_sessions"),
        (["--retention", "23h"], "retention"),
        (["--signout-url", "javascript:alert(1)"], "signout_url"),
        (["--signout-url", "//evil.example/"], "signout_url"),
        (["--persistent-login", "on", "--absolute", "1m"], "absolute"),  # the valid option is not saved either
    ],
)
def test_settings_set_refuses_a_value_out_of_range_naming_the_field_and_changes_nothing(app, args, field):
    before = snapshot()

    result = cli(app, "settings", "set", *args)

    assert_error(result, f"{field}:")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--absolute", "8x"),
        ("--absolute", "8"),
        ("--inactivity", "soon"),
        ("--retention", "1.5d"),
        ("--persistent-login", "yes"),
        ("--max-sessions", "three"),
        ("--on-limit", "end-newest"),
    ],
)
def test_settings_set_refuses_a_malformed_value_naming_the_option_and_changes_nothing(app, option, value):
    before = snapshot()

    result = cli(app, "settings", "set", option, value)

    assert_error(result, f"{option}:", repr(value))
    assert snapshot() == before


def test_settings_set_with_apply_to_existing_recomputes_the_deadline_of_a_live_session(app, clock):
    make_user("alice")
    set_settings(inactivity=None)
    sign_in(app, "alice")
    clock.advance(minutes=10)

    result = cli(app, "settings", "set", "--absolute", "1h", "--apply-to-existing")

    assert ok(result) == "Changed: absolute.\n"
    row = latest_session()
    assert (row.absolute_seconds, row.expires_at) == (3600, row.created_at + timedelta(hours=1))
    [applied] = audit_events("settings.applied_to_existing")
    assert (applied.actor, applied.detail) == ("cli", {"sessions": 1})


def test_settings_set_without_apply_to_existing_keeps_the_deadline_captured_at_sign_in(app, clock):
    make_user("alice")
    set_settings(inactivity=None)
    sign_in(app, "alice")
    clock.advance(minutes=10)

    ok(cli(app, "settings", "set", "--absolute", "1h"))

    row = latest_session()
    assert (row.absolute_seconds, row.expires_at) == (8 * 3600, row.created_at + timedelta(hours=8))
    assert settings.load().absolute == timedelta(hours=1)
    assert audit_events("settings.applied_to_existing") == []


# --- sessions list ---------------------------------------------------------------------------


def test_sessions_list_shows_live_sessions_newest_first_in_a_table(app, clock):
    make_users("alice", "bob")
    sign_in(app, "alice")
    clock.advance(minutes=1)
    sign_in(app, "bob")
    first, second = session_rows()

    lines = ok(cli(app, "sessions", "list")).splitlines()

    assert lines[0].split() == ["ID", "USER", "STATUS", "SIGNED", "IN", "EXPIRES", "IP"]
    assert [line.split() for line in lines[1:]] == [
        [str(row.id), row.user.username, "active", row.created_at.isoformat(), row.expires_at.isoformat(), "127.0.0.1"]
        for row in (second, first)
    ]


def test_sessions_list_json_gives_every_field_of_each_session(app):
    make_user("alice")
    sign_in(app, "alice")
    row = latest_session()

    [entry] = listed(app)

    assert set(entry) == SESSION_FIELDS
    assert entry == {
        "id": row.id,
        "user": "alice",
        "status": "active",
        "signed_in_at": START.isoformat(),
        "last_activity_at": START.isoformat(),
        "expires_at": (START + timedelta(minutes=30)).isoformat(),
        "persistent": False,
        "ip_address": "127.0.0.1",
        "user_agent": row.user_agent,
        "ended_at": None,
        "end_reason": None,
    }


def test_sessions_list_with_user_shows_only_that_users_sessions(app):
    make_users("alice", "bob")
    for name in ("alice", "bob", "alice"):
        sign_in(app, name)

    assert [entry["user"] for entry in listed(app, "--user", "ALICE")] == ["alice", "alice"]


def test_sessions_list_with_an_unknown_user_fails(app):
    assert_error(cli(app, "sessions", "list", "--user", "nobody"), "'nobody'")


def test_sessions_list_shows_ended_sessions_only_with_ended(app):
    make_users("alice", "bob")
    sign_in(app, "alice").logout()
    sign_in(app, "bob")

    assert [(e["user"], e["status"]) for e in listed(app)] == [("bob", "active")]
    assert [(e["user"], e["status"], e["end_reason"]) for e in listed(app, "--ended")] == [
        ("bob", "active", None),
        ("alice", "ended", "signed_out"),
    ]


def test_sessions_list_leaves_out_a_session_that_expired_unseen(app, clock):
    make_user("alice")
    sign_in(app, "alice")
    clock.advance(minutes=31)

    assert listed(app) == []


def test_sessions_list_with_ended_does_not_call_a_session_that_expired_unseen_active(app, clock):
    make_user("alice")
    sign_in(app, "alice")
    clock.advance(minutes=31)

    [entry] = listed(app, "--ended")

    assert entry["status"] != "active"


# --- sessions end ----------------------------------------------------------------------------


def test_sessions_end_by_id_ends_that_session_and_sends_its_browser_to_sign_in(app, clock):
    make_user("alice")
    browser, other = sign_in(app, "alice"), sign_in(app, "alice")
    target = session_rows()[0]
    ended_at = clock.advance(minutes=2)

    result = cli(app, "sessions", "end", str(target.id))

    assert ok(result) == f"Ended session {target.id}.\n"
    assert [(row.end_reason, row.ended_at) for row in session_rows()] == [("ended_by_admin", ended_at), (None, None)]
    [event] = audit_events("session.ended")
    assert (event.actor, event.target) == ("cli", f"session {target.id}")
    assert sent_to_sign_in(browser)
    assert b"An administrator ended your session." in browser.client.get("/login").data
    assert other.client.get("/").status_code == 200


def test_sessions_end_with_user_ends_all_of_that_users_sessions(app):
    alice, bob = make_users("alice", "bob")
    for name in ("alice", "alice", "bob"):
        sign_in(app, name)

    assert ok(cli(app, "sessions", "end", "--user", "alice")) == "Ended 2 session(s).\n"
    assert [row.end_reason for row in session_rows(alice)] == ["ended_by_admin"] * 2
    assert [row.end_reason for row in session_rows(bob)] == [None]


def test_sessions_end_with_all_ends_every_live_session(app):
    make_users("alice", "bob")
    for name in ("alice", "bob", "bob"):
        sign_in(app, name)

    assert ok(cli(app, "sessions", "end", "--all")) == "Ended 3 session(s).\n"
    assert [row.end_reason for row in session_rows()] == ["ended_by_admin"] * 3


@pytest.mark.parametrize(
    "selectors",
    [[], ["1", "--all"], ["--user", "alice", "--all"], ["1", "--user", "alice"], ["1", "--user", "alice", "--all"]],
)
def test_sessions_end_needs_exactly_one_selector(app, selectors):
    make_user("alice")
    sign_in(app, "alice")
    before = snapshot()

    result = cli(app, "sessions", "end", *selectors)

    assert_error(result, "exactly one")
    assert snapshot() == before


def test_sessions_end_with_an_unknown_id_fails(app):
    make_user("alice")
    sign_in(app, "alice")
    before = snapshot()

    assert_error(cli(app, "sessions", "end", "999999"), "no session 999999")
    assert snapshot() == before


def test_sessions_end_with_an_unknown_user_fails(app):
    make_user("alice")
    sign_in(app, "alice")
    before = snapshot()

    assert_error(cli(app, "sessions", "end", "--user", "nobody"), "'nobody'")
    assert snapshot() == before


def test_sessions_end_refuses_a_session_that_has_already_ended(app):
    make_user("alice")
    sign_in(app, "alice").logout()
    row = latest_session()
    before = snapshot()

    assert_error(cli(app, "sessions", "end", str(row.id)), f"session {row.id} had already ended")
    assert snapshot() == before
    assert latest_session().end_reason == "signed_out"


def test_sessions_end_refuses_a_session_that_has_already_expired(app, clock):
    make_user("alice")
    sign_in(app, "alice")
    row = latest_session()
    clock.advance(minutes=31)

    assert_error(cli(app, "sessions", "end", str(row.id)), f"session {row.id} had already ended")
    assert latest_session().end_reason != "ended_by_admin"


def test_sessions_end_with_all_does_not_count_or_relabel_a_session_that_had_already_expired(app, clock):
    make_user("alice")
    sign_in(app, "alice")
    clock.advance(minutes=31)

    assert ok(cli(app, "sessions", "end", "--all")) == "Ended 0 session(s).\n"
    assert latest_session().end_reason != "ended_by_admin"


# --- sessions sweep --------------------------------------------------------------------------


def test_sessions_sweep_ends_a_session_that_went_idle_unseen_at_its_deadline(app, clock):
    alice, bob = make_users("alice", "bob")
    sign_in(app, "alice")
    clock.advance(minutes=20)
    sign_in(app, "bob")
    clock.advance(minutes=11)

    result = cli(app, "sessions", "sweep")

    assert ok(result) == "Ended 1 expired session(s); purged 0 past retention.\n"
    [idle] = session_rows(alice)
    assert (idle.end_reason, idle.ended_at) == ("idle_timeout", START + timedelta(minutes=30))
    assert [row.ended_at for row in session_rows(bob)] == [None]
    [event] = audit_events("session.ended")
    assert (event.actor, event.detail) == ("system", {"reason": "idle_timeout"})


def test_sessions_sweep_ends_a_session_past_its_absolute_limit_at_that_limit(app, clock):
    make_user("alice")
    set_settings(inactivity=None)
    sign_in(app, "alice")
    clock.advance(hours=9)

    assert ok(cli(app, "sessions", "sweep")) == "Ended 1 expired session(s); purged 0 past retention.\n"
    row = latest_session()
    assert (row.end_reason, row.ended_at) == ("absolute_timeout", START + timedelta(hours=8))


def test_sessions_sweep_purges_sessions_that_ended_longer_ago_than_the_retention(app, clock):
    make_user("alice")
    sign_in(app, "alice").logout()
    clock.advance(days=2)
    sign_in(app, "alice").logout()
    kept = latest_session().id
    clock.advance(days=28, seconds=1)

    result = cli(app, "sessions", "sweep")

    assert ok(result) == "Ended 0 expired session(s); purged 1 past retention.\n"
    assert [row.id for row in session_rows()] == [kept]


def test_sessions_sweep_uses_the_configured_retention(app, clock):
    make_user("alice")
    sign_in(app, "alice").logout()
    ok(cli(app, "settings", "set", "--retention", "1d"))
    clock.advance(days=1, seconds=1)

    assert ok(cli(app, "sessions", "sweep")) == "Ended 0 expired session(s); purged 1 past retention.\n"
    assert session_rows() == []


# --- setup -----------------------------------------------------------------------------------


def test_setup_on_an_empty_database_migrates_and_creates_the_roles_and_an_admin(empty_app):
    result = cli(empty_app, "setup")

    assert result.exit_code == 0, result.output
    assert "Created user 'admin' with role admin." in result.stdout.splitlines()
    head = ScriptDirectory(MIGRATIONS).get_current_head()
    assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == head
    assert set(inspect(db.engine).get_table_names()) >= {table.name for table in db.metadata.sorted_tables}
    assert sorted(db.session.scalars(select(Role.name))) == sorted(accounts.BUILTIN_ROLES)
    assert [(user.username, user.role.name) for user in db.session.scalars(select(User))] == [("admin", "admin")]


def test_setup_prints_a_random_admin_password_once_and_it_signs_in(empty_app):
    result = cli(empty_app, "setup")

    [line] = [line for line in result.stdout.splitlines() if line.startswith(PASSWORD_LINE)]
    password = line.removeprefix(PASSWORD_LINE)
    assert len(password) >= accounts.MIN_PASSWORD_LENGTH
    assert result.output.count(password) == 1
    assert Portal(empty_app.test_client()).login("admin", password).status_code == 303


def test_setup_run_again_creates_nothing_and_prints_no_password(empty_app):
    first = cli(empty_app, "setup")
    before = snapshot()

    result = cli(empty_app, "setup")

    assert result.exit_code == 0, result.output
    keys_line = first.stdout.splitlines()[0]
    assert keys_line.startswith("Signing keys in ")  # the same keys, not new ones
    assert result.stdout == f"{keys_line}\nDatabase is up to date.\n"
    assert snapshot() == before


def test_setup_gives_the_admin_the_password_from_idp_admin_password_without_printing_it(empty_app):
    result = cli(empty_app, "setup", env={"IDP_ADMIN_PASSWORD": NEW_PASSWORD})

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "Created user 'admin' with role admin."
    assert NEW_PASSWORD not in result.output and PASSWORD_LINE not in result.output
    assert Portal(empty_app.test_client()).login("admin", NEW_PASSWORD).status_code == 303


def test_setup_refuses_a_too_short_idp_admin_password_and_creates_no_user(empty_app):
    result = cli(empty_app, "setup", env={"IDP_ADMIN_PASSWORD": "short"})

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "Error: a password is 8 to 1024 characters long"
    assert user_count() == 0


# --- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "mentions"),
    [
        ("users", ["create", "set-password"]),
        ("settings", ["show", "set"]),
        ("sessions", ["list", "end", "sweep"]),
        ("setup", ["--admin-password"]),
    ],
)
def test_help_describes_each_command_group(app, group, mentions):
    out = ok(cli(app, group, "--help"))

    assert out.startswith("Usage:")
    assert all(mention in out for mention in mentions)



