"""`flask --app wsgi ...` commands. Each exits 0 on success, else 1 with a one-line `Error:`."""

from __future__ import annotations

import json
import secrets
import sys
import time
from dataclasses import replace

import click
from flask import current_app
from flask.cli import AppGroup
from flask_migrate import upgrade
from sqlalchemy import select

from directory import accounts, audit, durations, sessions, settings
from directory.db import db
from directory.models import DirectorySession, Role, User
from directory.policy import EndReason, OnLimit
from idp import context, delivery, keys
from idp.database import MIGRATIONS
from idp.oidc import clients
from idp.oidc.models import OAuthClient
from idp.saml import certs as saml_certs
from idp.saml import registry

users_cli = AppGroup("users", help="Create, list, disable and enable users; set passwords and roles.")
roles_cli = AppGroup("roles", help="Create, list and delete roles.")
settings_cli = AppGroup("settings", help="Show and change the session settings.")
sessions_cli = AppGroup("sessions", help="List, end and sweep directory sessions.")
keys_cli = AppGroup("keys", help="Rotate and list the token signing keys in certs/.")


def init_app(app) -> None:
    for command in (setup, users_cli, roles_cli, settings_cli, sessions_cli, keys_cli, clients_cli, logout_worker, saml_cli):
        app.cli.add_command(command)


def _fail(message: str):
    raise click.ClickException(message)


def _emit(rows: list[dict], as_json: bool, line, header: str | None = None) -> None:
    """Print `rows` as JSON, or for people as an optional header and one `line(row)` each."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if header:
        click.echo(header)
    for row in rows:
        click.echo(line(row))


@click.command("setup")
@click.option("--admin-password", envvar="IDP_ADMIN_PASSWORD", help="Password for the first admin (default: random, printed once).")
def setup(admin_password: str | None) -> None:
    """Migrate the database, create the built-in roles and, on first run, user `admin`."""
    upgrade(directory=MIGRATIONS)
    accounts.ensure_builtin_roles()
    ring = keys.current(current_app)
    click.echo(f"Signing keys in {ring.folder}: {', '.join(f'{alg} {ring.kid(alg)}' for alg in ('RS256', 'ES256'))}.")
    if db.session.scalar(select(User.id).limit(1)) is not None:
        click.echo("Database is up to date.")
        return
    password = admin_password or secrets.token_urlsafe(12)
    try:
        accounts.create_user("admin", password, now=context.now(), role="admin", display_name="Administrator")
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo("Created user 'admin' with role admin.")
    if not admin_password:
        click.echo(f"Its password, shown only this once: {password}")


def _password(given: str | None, from_stdin: bool) -> str:
    if given is not None and from_stdin:
        _fail("give --password or --password-stdin, not both")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if given is not None:
        return given
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
@click.argument("username")
@click.option("--password", help="The password (visible in the process list; prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--email", default="")
@click.option("--display-name", default="")
@click.option("--role", default="user", show_default=True)
def create_user(username, password, password_stdin, email, display_name, role) -> None:
    """Create a user who can sign in at the portal."""
    try:
        user = accounts.create_user(
            username, _password(password, password_stdin), now=context.now(),
            email=email, display_name=display_name, role=role,
        )
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"Created user {user.username!r} with role {role}.")


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def set_password(username, password_stdin) -> None:
    """Set a user's password; their sessions end."""
    user = _user(username)
    try:
        accounts.set_password(user, _password(None, password_stdin), now=context.now())
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"Password of {user.username!r} changed; their sessions have ended.")


def _user(username: str) -> User:
    return accounts.find_user(username) or _fail(f"no user {username!r}")


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_users(as_json) -> None:
    """List every user by username, with role, status and live sessions."""
    now = context.now()
    users = list(db.session.scalars(select(User).order_by(User.username)))
    live = accounts.live_session_counts([user.id for user in users], now=now)
    rows = [
        {"username": u.username, "email": u.email, "display_name": u.display_name, "role": u.role.name,
         "status": "disabled" if u.disabled else "active", "live_sessions": live.get(u.id, 0),
         "created_at": u.created_at.isoformat(), "last_sign_in_at": u.last_sign_in_at and u.last_sign_in_at.isoformat()}
        for u in users
    ]
    _emit(
        rows, as_json,
        lambda row: f"{row['username']:<24} {row['role']:<16} {row['status']:<8} {row['live_sessions']:>8}  {row['email']}",
        header=f"{'USERNAME':<24} {'ROLE':<16} {'STATUS':<8} {'SESSIONS':>8}  EMAIL",
    )


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role")
def set_role(username, role) -> None:
    """Give a user a role; it applies to their live sessions at once."""
    user = _user(username)
    try:
        changed = accounts.set_role(user, role, now=context.now())
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"{user.username!r} now has role {user.role.name}." if changed else f"{user.username!r} already had role {user.role.name}.")


@users_cli.command("disable")
@click.argument("username")
def disable_user(username) -> None:
    """Stop a user signing in; their sessions end and their applications are signed out."""
    user = _user(username)
    try:
        ended = accounts.disable_user(user, now=context.now())
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"Disabled {user.username!r}; {ended} session(s) ended.")


@users_cli.command("enable")
@click.argument("username")
def enable_user(username) -> None:
    """Let a disabled user sign in again."""
    user = _user(username)
    try:
        accounts.enable_user(user, now=context.now())
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"Enabled {user.username!r}.")


@roles_cli.command("create")
@click.argument("name")
@click.option("--permission", "permissions", multiple=True, help=f"Repeat for each: {', '.join(accounts.PERMISSIONS)}.")
@click.option("--description", default="")
def create_role(name, permissions, description) -> None:
    """Create a custom role granting exactly the permissions given."""
    try:
        role = accounts.create_role(name, permissions, description, now=context.now())
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"Created role {role.name!r} with {', '.join(sorted(role.permissions)) or 'no permissions'}.")


@roles_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_roles(as_json) -> None:
    """List roles with their permissions and how many users hold each."""
    holders = accounts.role_holders()
    rows = [
        {"name": r.name, "builtin": r.builtin, "description": r.description, "users": holders.get(r.id, 0),
         "permissions": [p for p in accounts.PERMISSIONS if p in r.permissions]}
        for r in db.session.scalars(select(Role).order_by(Role.name))
    ]
    _emit(
        rows, as_json,
        lambda row: f"{row['name']:<20} {'yes' if row['builtin'] else 'no':<8} {row['users']:>5}  {' '.join(row['permissions']) or '-'}",
        header=f"{'ROLE':<20} {'BUILTIN':<8} {'USERS':>5}  PERMISSIONS",
    )


@roles_cli.command("delete")
@click.argument("name")
def delete_role(name) -> None:
    """Delete a custom role that nobody holds."""
    role = accounts.find_role(name) or _fail(f"no role {name!r}")
    try:
        accounts.delete_role(role, now=context.now())
    except accounts.AccountError as error:
        _fail(str(error))
    click.echo(f"Deleted role {role.name!r}.")


@settings_cli.command("show")
def show_settings() -> None:
    """Print the session settings as JSON."""
    click.echo(json.dumps(settings.load().as_json(), indent=2))


def _duration_or_off(value: str, option: str):
    if value.strip().lower() == "off":
        return None
    return _duration(value, option)


def _duration(value: str, option: str):
    try:
        return durations.parse(value)
    except ValueError as error:
        _fail(f"{option}: {error}")


def _switch(value: str, option: str) -> bool:
    if value.lower() not in ("on", "off"):
        _fail(f"{option}: say on or off, not {value!r}")
    return value.lower() == "on"


@settings_cli.command("set")
@click.option("--inactivity", help="Inactivity timeout, like 30m, or off.")
@click.option("--absolute", help="Absolute timeout, like 8h.")
@click.option("--persistent-login", help="on or off.")
@click.option("--max-sessions", help="Concurrent sessions per user, 1 to 100, or off.")
@click.option("--on-limit", help="end-oldest or refuse.")
@click.option("--signout-url", help="Where users land after signing out or expiring; empty for the sign-in page.")
@click.option("--retention", help="How long ended sessions are kept, like 30d.")
@click.option("--signout-apps-on-expiry", help="on: expiry, like a sign-out, ends the applications' sessions.")
@click.option("--audit-retention", help="How long audit events are kept, like 365d (1 day to 10 years).")
@click.option("--apply-to-existing", is_flag=True, help="Recompute the deadlines of live sessions too.")
def set_settings(inactivity, absolute, persistent_login, max_sessions, on_limit, signout_url, retention, signout_apps_on_expiry,
                 audit_retention, apply_to_existing) -> None:
    """Change session settings; options not given keep their value."""
    changes: dict = {}
    if inactivity is not None:
        changes["inactivity"] = _duration_or_off(inactivity, "--inactivity")
    if absolute is not None:
        changes["absolute"] = _duration(absolute, "--absolute")
    if retention is not None:
        changes["retention"] = _duration(retention, "--retention")
    if audit_retention is not None:
        changes["audit_retention"] = _duration(audit_retention, "--audit-retention")
    if persistent_login is not None:
        changes["persistent_login"] = _switch(persistent_login, "--persistent-login")
    if signout_apps_on_expiry is not None:
        changes["signout_apps_on_expiry"] = _switch(signout_apps_on_expiry, "--signout-apps-on-expiry")
    if max_sessions is not None:
        if max_sessions.lower() == "off":
            changes["max_sessions"] = None
        elif max_sessions.isascii() and max_sessions.isdigit():
            changes["max_sessions"] = int(max_sessions)
        else:
            _fail(f"--max-sessions: a whole number or off, not {max_sessions!r}")
    if on_limit is not None:
        if on_limit not in {policy.value for policy in OnLimit}:
            _fail(f"--on-limit: end-oldest or refuse, not {on_limit!r}")
        changes["on_limit"] = OnLimit(on_limit)
    if signout_url is not None:
        changes["signout_url"] = signout_url.strip() or None
    try:
        changed = settings.save(
            replace(settings.load(), **changes), now=context.now(), actor=None,
            actor_label="cli", apply_to_existing=apply_to_existing,
        )
    except settings.InvalidSettings as invalid:
        _fail(str(invalid))
    click.echo(f"Changed: {', '.join(changed)}." if changed else "Nothing changed.")


def _session_json(row: DirectorySession, now) -> dict:
    def stamp(moment):
        return moment.isoformat() if moment else None

    ended_at, end_reason = row.outcome(now)
    return {
        "id": row.id,
        "user": row.user.username,
        "status": "ended" if ended_at else "active",
        "signed_in_at": stamp(row.created_at),
        "last_activity_at": stamp(row.last_activity_at),
        "expires_at": stamp(row.expires_at),
        "persistent": row.persistent,
        "ip_address": row.ip_address,
        "user_agent": row.user_agent,
        "ended_at": stamp(ended_at),
        "end_reason": end_reason,
    }


@sessions_cli.command("list")
@click.option("--user", "username", help="Only this user's sessions.")
@click.option("--ended", is_flag=True, help="Include sessions that have ended.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_sessions(username, ended, as_json) -> None:
    """List live sessions (with --ended, also those kept after ending), newest first."""
    query = select(DirectorySession).order_by(DirectorySession.created_at.desc(), DirectorySession.id.desc())
    if username:
        user = accounts.find_user(username) or _fail(f"no user {username!r}")
        query = query.where(DirectorySession.user_id == user.id)
    now = context.now()
    if not ended:
        query = query.where(DirectorySession.ended_at.is_(None), DirectorySession.expires_at > now)
    rows = [_session_json(row, now) for row in db.session.scalars(query)]
    _emit(
        rows, as_json,
        lambda row: f"{row['id']:>6}  {row['user']:<20} {row['status']:<7} {row['signed_in_at']:<25} {row['expires_at']:<25} {row['ip_address']}",
        header=f"{'ID':>6}  {'USER':<20} {'STATUS':<7} {'SIGNED IN':<25} {'EXPIRES':<25} IP",
    )


@sessions_cli.command("end")
@click.argument("session_id", required=False, type=int)
@click.option("--user", "username", help="End every session of this user.")
@click.option("--all", "everyone", is_flag=True, help="End every session in the directory.")
def end_sessions(session_id, username, everyone) -> None:
    """End one session, all of a user's sessions, or all sessions."""
    if sum(x is not None and x is not False for x in (session_id, username, everyone)) != 1:
        _fail("give exactly one of a session ID, --user USERNAME or --all")
    now = context.now()
    if session_id is not None:
        row = db.session.get(DirectorySession, session_id) or _fail(f"no session {session_id}")
        if not sessions.end(row, EndReason.ENDED_BY_ADMIN, now=now, actor_label="cli"):
            _fail(f"session {session_id} had already ended")
        click.echo(f"Ended session {session_id}.")
        return
    user = None
    if username:
        user = accounts.find_user(username) or _fail(f"no user {username!r}")
    count = sessions.end_all(user=user, reason=EndReason.ENDED_BY_ADMIN, now=now, actor_label="cli")
    click.echo(f"Ended {count} session(s).")


@sessions_cli.command("sweep")
def sweep() -> None:
    """End sessions that expired unseen, purge those past the retention period, and delete
    audit events older than the audit retention."""
    current, now = settings.load(), context.now()
    ended, purged = sessions.sweep(now=now, retention=current.retention)
    click.echo(f"Ended {ended} expired session(s); purged {purged} past retention.")
    if deleted := audit.purge(now=now, retention=current.audit_retention):
        click.echo(f"Deleted {deleted} audit event(s) older than {durations.human(current.audit_retention)}.")


def _stamp(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


@keys_cli.command("rotate")
def rotate_keys() -> None:
    """Add new RS256 and ES256 signing keys; the old ones stay published, then are removed."""
    now = context.now()
    try:
        ring = keys.KeyRing.load(keys.keyring_folder(current_app), now=now)
        made = ring.rotate(now=now)
        removed = ring.prune(now=now)
    except keys.KeyRingError as error:
        _fail(str(error))
    for alg, kid in made.items():
        click.echo(f"{alg} {kid}")
    if removed:
        click.echo(f"Removed {len(removed)} key(s) retired more than {durations.human(ring.publish_for)} ago.")
    click.echo(f"Old keys stay published until {_stamp(now + ring.publish_for)}.")


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(as_json) -> None:
    """List every key in the ring, newest first."""
    now = context.now()
    try:
        ring = keys.KeyRing.load(keys.keyring_folder(current_app), now=now, create=False)
    except keys.KeyRingError as error:
        _fail(str(error))
    entries = sorted(ring.entries, key=lambda entry: entry.created_at, reverse=True)
    if as_json:
        rows = [{**e.as_json(), "published": e.published(now, ring.publish_for)} for e in entries]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'KID':<43}  {'ALG':<5}  {'CREATED':<23}  RETIRED")
    for e in entries:
        click.echo(f"{e.kid:<43}  {e.alg:<5}  {_stamp(e.created_at):<23}  {_stamp(e.retired_at)}")


@click.command("logout-worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (for cron).")
@click.option("--interval", default=2, show_default=True, type=click.IntRange(1, 3600), help="Seconds between rounds.")
def logout_worker(once: bool, interval: int) -> None:
    """Send due Single Logout notices from the outbox. Several workers may run at once:
    each notice is leased to one of them."""
    while True:
        counts = delivery.deliver_due(now=context.now())
        handled = sum(counts.values())
        if handled:
            click.echo(f"sent {counts['sent']}, retrying {counts['retrying']}, failed {counts['failed']}")
        if handled == delivery.BATCH:
            continue  # a full batch: more may be due already
        if once:
            return
        time.sleep(interval)


clients_cli = AppGroup("clients", help="Register OpenID Connect applications.")


@clients_cli.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI; repeat for several.")
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True)
@click.option("--backchannel-logout-uri")
@click.option("--frontchannel-logout-uri")
@click.option("--public", is_flag=True, help="No secret (browser or mobile app); PKCE is then required.")
@click.option("--grant-type", "grant_types", multiple=True, help="authorization_code, refresh_token, client_credentials.")
@click.option("--id-token-alg", default="RS256", show_default=True)
@click.option("--trusted", is_flag=True, help="Skip the consent screen (first-party app).")
@click.option("--scope", "scopes", multiple=True, help="An /api/v1 scope its client_credentials tokens may carry (sessions:view, ...); repeat for several.")
@click.option("--json", "as_json", is_flag=True)
def create_client(name, redirect_uris, post_logout, backchannel_logout_uri, frontchannel_logout_uri, public, grant_types, id_token_alg, trusted, scopes, as_json) -> None:
    """Register an app; prints its client_id and, once, its secret."""
    spec = clients.Registration(
        name=name, redirect_uris=list(redirect_uris), post_logout_redirect_uris=list(post_logout),
        backchannel_logout_uri=backchannel_logout_uri, frontchannel_logout_uri=frontchannel_logout_uri,
        public=public, id_token_alg=id_token_alg, trusted=trusted, scopes=list(scopes),
        **({"grant_types": list(grant_types)} if grant_types else {}),
    )
    try:
        client, secret = clients.register(spec, now=context.now())
    except clients.ClientError as error:
        _fail(str(error))
    if as_json:
        click.echo(json.dumps({"client_id": client.client_id, "client_secret": secret, "name": name}))
        return
    click.echo(f"client_id:     {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}  (shown only this once)")


@clients_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_clients(as_json) -> None:
    """List registered OpenID Connect apps."""
    rows = [
        {"client_id": c.client_id, "name": c.app.name, "public": c.is_public, "redirect_uris": c.redirect_uris,
         "backchannel_logout_uri": c.backchannel_logout_uri, "grant_types": c.grant_types, "scope": c.scope}
        for c in db.session.scalars(select(OAuthClient).order_by(OAuthClient.id))
    ]
    _emit(rows, as_json, lambda row: f"{row['client_id']}  {row['name']}  {' '.join(row['redirect_uris'])}")


@clients_cli.command("delete")
@click.argument("client_id")
def delete_client(client_id) -> None:
    """Remove an app; its tokens stop working."""
    client = clients.find(client_id) or _fail(f"no client {client_id!r}")
    db.session.delete(client.app)
    audit.record("app.deleted", now=context.now(), actor_label="cli", target=client.app.name, client_id=client_id)
    db.session.commit()
    click.echo(f"Deleted {client_id}.")


# --- SAML service providers ---------------------------------------------------------------

saml_cli = AppGroup("saml", help="Register SAML 2.0 service providers; rotate the SAML signing certificate.")


@saml_cli.command("add-sp")
@click.option("--metadata", "source", required=True, help="The SP's metadata: a file, or an https URL.")
@click.option("--name", help="Display name (default: the entityID).")
@click.option("--nameid-format", default="persistent", show_default=True,
              help="persistent, transient, emailAddress or unspecified.")
@click.option("--attribute", "attributes", multiple=True,
              help="An attribute to release (uid, email, displayName, role); repeat. Default: uid, email, displayName.")
@click.option("--signed-requests/--unsigned-requests", "signed", default=None,
              help="Require signed AuthnRequests (default: what the metadata's AuthnRequestsSigned says).")
def add_sp(source, name, nameid_format, attributes, signed) -> None:
    """Register a service provider from its metadata."""
    try:
        sp = registry.add_sp(
            registry.read_metadata(source), name=name, now=context.now(), actor_label="cli",
            nameid_format=nameid_format, attributes=list(attributes) or None, wants_signed_requests=signed,
        )
    except registry.SamlError as error:
        _fail(str(error))
    click.echo(f"Registered {sp.entity_id} as {sp.app.name!r} (NameID {sp.nameid_format}, "
               f"attributes {', '.join(sp.released_attributes) or 'none'}).")


@saml_cli.command("list-sps")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_sps(as_json) -> None:
    """List registered service providers."""
    rows = []
    for sp in registry.all_sps():
        parsed = registry.parse_metadata(sp.metadata_xml)
        rows.append({
            "entity_id": sp.entity_id, "name": sp.app.name, "nameid_format": sp.nameid_format,
            "released_attributes": sp.released_attributes, "wants_signed_requests": sp.wants_signed_requests,
            "single_logout": sp.app.single_logout, "backchannel_logout": sp.app.backchannel_logout,
            "frontchannel_logout": sp.app.frontchannel_logout,
            "assertion_consumer_services": [location for _, location in parsed.assertion_consumer_services],
        })
    _emit(rows, as_json, lambda row: f"{row['entity_id']}  {row['name']}  {row['nameid_format']}  {' '.join(row['released_attributes'])}")


@saml_cli.command("remove-sp")
@click.argument("entity_id")
def remove_sp(entity_id) -> None:
    """Remove a service provider and its app."""
    try:
        registry.remove_sp(entity_id, now=context.now(), actor_label="cli")
    except registry.SamlError as error:
        _fail(str(error))
    click.echo(f"Removed {entity_id}.")


def _cert_set():
    try:
        return saml_certs.read(current_app)
    except keys.KeyRingError as error:
        _fail(str(error))


@saml_cli.command("rotate-cert")
@click.option("--replace", "replace_staged", is_flag=True,
              help="Discard a staged certificate that was never activated and stage a new one.")
def rotate_cert(replace_staged) -> None:
    """Stage a new signing certificate: in the metadata now, signing only after activate-cert."""
    now, certset = context.now(), _cert_set()
    try:
        pair = certset.rotate(now=now, replace_staged=replace_staged)
    except keys.KeyRingError as error:
        _fail(str(error))
    click.echo(f"Staged certificate {pair.id} (SHA-256 {pair.fingerprint}); it is in /saml/metadata now.")
    click.echo(f"Responses are still signed with {certset.signing.id}. Once service providers have refreshed our metadata,")
    click.echo(f"from {_stamp(now + certset.publish_for)}, run `flask --app wsgi saml activate-cert`.")


@saml_cli.command("activate-cert")
@click.option("--force", is_flag=True, help="Activate even if the certificate was staged less than the publish period ago.")
def activate_cert(force) -> None:
    """Sign with the staged certificate; the previous one stays in the metadata for the publish period."""
    now, certset = context.now(), _cert_set()
    previous = certset.signing
    try:
        pair = certset.activate(now=now, force=force)
    except keys.KeyRingError as error:
        _fail(str(error))
    click.echo(f"Signing with certificate {pair.id} (SHA-256 {pair.fingerprint}).")
    click.echo(f"The previous certificate {previous.id} stays in /saml/metadata until {_stamp(now + certset.publish_for)}.")
    click.echo(f"Running servers switch on their next SAML request (they re-read {saml_certs.MANIFEST}); no restart needed.")


@saml_cli.command("list-certs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_certs(as_json) -> None:
    """List the SAML certificates: signing, next (staged), previous (still published), retired."""
    now = context.now()
    rows = [
        {"id": entry.id, "role": role, "fingerprint": pair.fingerprint,
         "not_after": pair.certificate.not_valid_after_utc.isoformat(), **entry.as_json()}
        for role, entry, pair in _cert_set().rows(now)
    ]
    _emit(rows, as_json, lambda row: f"{row['role']:<8}  {row['id']:<16}  {row['not_after'][:10]:<10}  "
          f"{row['staged_at'][:16]:<16}  {(row['activated_at'] or '-')[:16]:<16}  {(row['retired_at'] or '-')[:16]:<16}  {row['fingerprint']}",
          header=f"{'ROLE':<8}  {'ID':<16}  {'NOT AFTER':<10}  {'STAGED':<16}  {'ACTIVATED':<16}  {'RETIRED':<16}  SHA-256")
