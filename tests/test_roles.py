"""Roles: custom roles grant exactly their permissions; the built-in ones stay as they are.

Through the domain (`accounts`), the roles page /admin/roles, and the `roles` and
`users set-role` commands; each refusal changes nothing.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from directory import accounts
from directory.db import db
from directory.models import Role
from tests.conftest import START
from tests.factories import make_user
from tests.test_admin_apps import audit_events, post, sign_in
from tests.test_admin_users import user_named
from tests.test_cli import assert_error, cli, ok, snapshot

ADMIN = "root"
PAGE = "/admin/roles"
ADMIN_PAGES = ["/admin/users", PAGE, "/admin/settings", "/admin/apps", "/admin/saml", "/admin/sessions", "/admin/audit"]


def role_named(name: str) -> Role | None:
    db.session.expire_all()
    return db.session.scalar(select(Role).where(Role.name == name))


def granted(name: str) -> list[str]:
    return sorted(role_named(name).permissions)


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def admin(app):
    return sign_in(app, ADMIN, "admin")


# --- the domain ------------------------------------------------------------------------------


def test_a_custom_role_grants_exactly_its_permissions(app):
    accounts.create_role("Auditor", ["audit:view", "sessions:view"], "Reads the trail", now=START)
    user = make_user("alice", role="auditor")

    assert {p: user.can(p) for p in accounts.PERMISSIONS} == {p: p in ("audit:view", "sessions:view") for p in accounts.PERMISSIONS}
    assert role_named("auditor").description == "Reads the trail" and not role_named("auditor").builtin
    assert audit_events("role.created") == [("cli", "auditor", {"permissions": ["sessions:view", "audit:view"]})]


@pytest.mark.parametrize(
    ("name", "permissions", "description", "message"),
    [
        ("bad name", ["audit:view"], "", "a role name is 1 to 64"),
        ("admin", ["audit:view"], "", "role 'admin' already exists"),
        ("auditor", ["audit:view", "root:everything"], "", "no such permission: root:everything"),
        ("auditor", [], "x" * 201, "a description is at most 200 characters"),
    ],
)
def test_create_role_refuses_bad_input_and_changes_nothing(app, name, permissions, description, message):
    before = snapshot()

    with pytest.raises(accounts.AccountError, match=message):
        accounts.create_role(name, permissions, description, now=START)
    assert snapshot() == before


def test_update_role_replaces_the_permissions_and_audits_the_changes(app):
    role = accounts.create_role("auditor", ["audit:view"], now=START)

    changes = accounts.update_role(role, ["sessions:view", "sessions:revoke"], "Ends sessions", now=START)

    assert granted("auditor") == ["sessions:revoke", "sessions:view"]
    assert changes == {"permissions": {"old": ["audit:view"], "new": ["sessions:view", "sessions:revoke"]},
                       "description": {"old": "", "new": "Ends sessions"}}
    assert audit_events("role.changed") == [("cli", "auditor", {"changes": changes})]


def test_update_role_with_the_same_values_records_nothing(app):
    role = accounts.create_role("auditor", ["audit:view"], "Reads", now=START)

    assert accounts.update_role(role, ["audit:view"], "Reads", now=START) == {}
    assert audit_events("role.changed") == []


@pytest.mark.parametrize("name", list(accounts.BUILTIN_ROLES))
def test_builtin_roles_can_be_neither_changed_nor_deleted(app, name):
    before = snapshot()

    with pytest.raises(accounts.AccountError, match="is a built-in role and cannot be changed"):
        accounts.update_role(role_named(name), [], "", now=START)
    with pytest.raises(accounts.AccountError, match="is a built-in role and cannot be deleted"):
        accounts.delete_role(role_named(name), now=START)
    assert snapshot() == before


def test_a_role_still_held_cannot_be_deleted(app):
    accounts.create_role("auditor", ["audit:view"], now=START)
    make_user("alice", role="auditor")
    before = snapshot()

    with pytest.raises(accounts.AccountError, match="still held by 1 user"):
        accounts.delete_role(role_named("auditor"), now=START)
    assert snapshot() == before


# --- the page ----------------------------------------------------------------------------------


def test_a_role_with_only_audit_view_opens_the_audit_log_and_no_other_admin_page(app):
    accounts.create_role("auditor", ["audit:view"], now=START)
    browser = sign_in(app, "alice", "auditor")

    assert {page: browser.get(page).status_code for page in ADMIN_PAGES} == {page: 403 for page in ADMIN_PAGES} | {"/admin/audit": 200}


def test_a_role_with_only_users_manage_opens_the_user_pages_and_nothing_else(app):
    accounts.create_role("helpdesk", ["users:manage"], now=START)
    browser = sign_in(app, "alice", "helpdesk")

    assert {page: browser.get(page).status_code for page in ADMIN_PAGES} == {page: 403 for page in ADMIN_PAGES} | {"/admin/users": 200, PAGE: 200}


def test_the_page_lists_every_role_with_its_permissions_and_holders(app, admin):
    accounts.create_role("auditor", ["audit:view"], "Reads the trail", now=START)

    page = text(admin.get(PAGE))

    assert "<td>sessions:revoke, sessions:view</td>" in page
    row = page.split(">auditor</a>")[1].split("</tr>")[0]
    assert "<td>audit:view</td>" in row and "<td>Reads the trail</td>" in row and "<td>0</td>" in row
    assert "<td>1</td>" in page.split("<td>admin <span")[1].split("</tr>")[0]


def test_creating_a_role_from_the_checkboxes_stores_and_audits_it(app, admin):
    response = post(admin, PAGE, {"name": "auditor", "permissions": ["audit:view", "sessions:view"], "description": "Reads"})

    assert response.status_code == 303
    assert granted("auditor") == ["audit:view", "sessions:view"]
    assert audit_events("role.created") == [(ADMIN, "auditor", {"permissions": ["sessions:view", "audit:view"]})]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "", "permissions": ["audit:view"]}, "a role name is 1 to 64"),
        ({"name": "user", "permissions": ["audit:view"]}, "role &#39;user&#39; already exists"),
        ({"name": "auditor", "permissions": ["everything"]}, "no such permission: everything"),
    ],
)
def test_creating_a_role_with_bad_input_is_refused_with_the_reason_and_changes_nothing(app, admin, form, message):
    before = snapshot()

    response = post(admin, PAGE, form)

    assert response.status_code == 400 and message in text(response) and "Nothing was created" in text(response)
    assert snapshot() == before


def test_editing_a_role_changes_what_its_holders_may_do_on_their_next_request(app, admin):
    role = accounts.create_role("helpdesk", ["audit:view"], now=START)
    holder = sign_in(app, "alice", "helpdesk")
    assert holder.get("/admin/users").status_code == 403

    response = post(admin, f"{PAGE}/{role.id}", {"permissions": ["users:manage"], "description": "Helps"})

    assert response.status_code == 303 and granted("helpdesk") == ["users:manage"]
    assert holder.get("/admin/users").status_code == 200
    assert [event[0] for event in audit_events("role.changed")] == [ADMIN]


@pytest.mark.parametrize("name", list(accounts.BUILTIN_ROLES))
def test_a_builtin_role_cannot_be_edited_or_deleted_from_the_page(app, admin, name):
    role_id = role_named(name).id
    before = snapshot()

    edited = post(admin, f"{PAGE}/{role_id}", {"permissions": ["audit:view"]})
    deleted = post(admin, f"{PAGE}/{role_id}/delete", {})

    assert edited.status_code == 400 and "is a built-in role and cannot be changed" in text(edited)
    assert deleted.status_code == 400 and "is a built-in role and cannot be deleted" in text(deleted)
    assert snapshot() == before


def test_deleting_an_unused_role_removes_it_and_audits_it(app, admin):
    role = accounts.create_role("auditor", ["audit:view"], now=START)

    response = post(admin, f"{PAGE}/{role.id}/delete", {})

    assert response.status_code == 303 and role_named("auditor") is None
    assert audit_events("role.deleted") == [(ADMIN, "auditor", {})]


def test_deleting_a_role_someone_holds_is_refused_and_changes_nothing(app, admin):
    role = accounts.create_role("auditor", ["audit:view"], now=START)
    make_user("alice", role="auditor")
    before = snapshot()

    response = post(admin, f"{PAGE}/{role.id}/delete", {})

    assert response.status_code == 400 and "still held by 1 user(s)" in text(response)
    assert snapshot() == before


def test_an_admin_cannot_take_users_manage_away_from_their_own_role(app):
    role = accounts.create_role("helpdesk", ["users:manage"], now=START)
    browser = sign_in(app, "alice", "helpdesk")
    before = snapshot()

    response = post(browser, f"{PAGE}/{role.id}", {"permissions": ["audit:view"]})

    assert response.status_code == 400 and "you cannot take users:manage away from your own role" in text(response)
    assert snapshot() == before


def test_an_unknown_role_is_not_found(app, admin):
    assert post(admin, f"{PAGE}/999", {"permissions": []}).status_code == 404
    assert post(admin, f"{PAGE}/999/delete", {}).status_code == 404


# --- the commands ----------------------------------------------------------------------------


def test_roles_create_grants_the_permissions_given(app):
    out = ok(cli(app, "roles", "create", "auditor", "--permission", "audit:view", "--permission", "sessions:view", "--description", "Reads"))

    assert out == "Created role 'auditor' with audit:view, sessions:view.\n"
    assert granted("auditor") == ["audit:view", "sessions:view"] and role_named("auditor").description == "Reads"
    assert audit_events("role.created") == [("cli", "auditor", {"permissions": ["sessions:view", "audit:view"]})]


def test_roles_list_json_gives_every_role_with_permissions_and_holders(app):
    ok(cli(app, "roles", "create", "auditor", "--permission", "audit:view"))
    make_user("alice", role="auditor")

    rows = json.loads(ok(cli(app, "roles", "list", "--json")))

    assert [(r["name"], r["builtin"], r["users"], r["permissions"]) for r in rows] == [
        ("admin", True, 0, list(accounts.PERMISSIONS)),
        ("auditor", False, 1, ["audit:view"]),
        ("session-manager", True, 0, ["sessions:view", "sessions:revoke"]),
        ("user", True, 0, []),
    ]


def test_roles_list_prints_a_table(app):
    lines = ok(cli(app, "roles", "list")).splitlines()

    assert lines[0].split() == ["ROLE", "BUILTIN", "USERS", "PERMISSIONS"]
    assert lines[2].split() == ["session-manager", "yes", "0", "sessions:view", "sessions:revoke"]
    assert lines[3].split() == ["user", "yes", "0", "-"]


def test_roles_delete_removes_an_unused_role(app):
    ok(cli(app, "roles", "create", "auditor", "--permission", "audit:view"))

    assert ok(cli(app, "roles", "delete", "auditor")) == "Deleted role 'auditor'.\n"
    assert role_named("auditor") is None
    assert audit_events("role.deleted") == [("cli", "auditor", {})]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "auditor", "--permission", "everything"), "no such permission: everything"),
        (("create", "session-manager"), "role 'session-manager' already exists"),
        (("create", "no spaces allowed"), "a role name is 1 to 64"),
        (("delete", "admin"), "'admin' is a built-in role and cannot be deleted"),
        (("delete", "nobody"), "no role 'nobody'"),
        (("delete", "held"), "still held by 1 user(s)"),
    ],
)
def test_roles_refusals_exit_1_and_change_nothing(app, args, message):
    accounts.create_role("held", ["audit:view"], now=START)
    make_user("alice", role="held")
    before = snapshot()

    assert_error(cli(app, "roles", *args), message)
    assert snapshot() == before


def test_users_set_role_gives_the_user_the_role_and_audits_it(app):
    make_user("alice")

    assert ok(cli(app, "users", "set-role", "ALICE", "session-manager")) == "'alice' now has role session-manager.\n"
    assert user_named("alice").role.name == "session-manager"
    assert audit_events("user.role_changed") == [("cli", "alice", {"old": "user", "new": "session-manager"})]


def test_users_set_role_to_the_role_already_held_changes_nothing(app):
    make_user("alice")
    before = snapshot()

    assert ok(cli(app, "users", "set-role", "alice", "user")) == "'alice' already had role user.\n"
    assert snapshot() == before


@pytest.mark.parametrize(("args", "message"), [(("alice", "nobody"), "there is no role 'nobody'"), (("nobody", "user"), "no user 'nobody'")])
def test_users_set_role_refusals_exit_1_and_change_nothing(app, args, message):
    make_user("alice")
    before = snapshot()

    assert_error(cli(app, "users", "set-role", *args), message)
    assert snapshot() == before


@pytest.mark.parametrize(("group", "mentions"), [("roles", ["create", "list", "delete"]), ("users", ["list", "set-role", "disable", "enable"])])
def test_help_describes_the_commands(app, group, mentions):
    out = ok(cli(app, group, "--help"))

    assert all(mention in out for mention in mentions)
