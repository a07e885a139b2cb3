"""/api/v1 against its own OpenAPI document, by schemathesis: every operation is called with
generated values (valid and invalid) and a token holding every scope, and each answer must be
no server error and exactly what the document declares (status, content type, headers, body).

This runs in CI: `.ci/run` runs `make test`, which runs the whole suite, this file included,
on SQLite and then on PostgreSQL. The app is called in-process through WSGI, no server.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from directory import logout, sessions
from directory import settings as directory_settings
from directory.db import db
from directory.policy import EndReason
from idp.oidc.models import API_SCOPES
from tests.factories import api_token, make_oidc_client, make_user

# Beyond the document: values it cannot express (a duration's range, inactivity not longer than
# the absolute timeout) are refused with 422 even when they match its schema.
ACCEPTED = ["2xx", "401", "403", "404", "409", "422"]


@pytest.fixture
def directory(make_app, clock):
    """An app with people, live and ended sessions, an application and audit events, and a
    token holding every API scope. Requests get their own contexts, as on a server."""
    app = make_app()
    with app.app_context():
        crm = make_oidc_client("CRM")[0].app
        for name, role in (("alice", "admin"), ("bob", "user")):
            user = make_user(name, role=role)
            for ip in ("81.2.69.160", "10.1.2.3"):
                opened = sessions.open(user, directory_settings.load(), now=clock.now(), ip=ip, user_agent="Mozilla/5.0 Firefox/133.0")
                logout.join(opened.session, crm, subject=name, now=clock.now())
                db.session.commit()
            sessions.end(opened.session, EndReason.SIGNED_OUT, now=clock.now(), actor=user)
        token = api_token(app, *API_SCOPES)
    return app, token


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_the_api_answers_as_its_openapi_document_says(directory, mode):
    """Each operation, with values that fit the document (positive) or break it (negative).
    (Driven through Hypothesis directly: schemathesis' lazy pytest fixture does not run under pytest 9.)"""
    app, token = directory
    config = schemathesis.Config.from_dict({
        "headers": {"Authorization": f"Bearer {token}"},
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
    })
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9

    for operation in operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate()  # every check: no server error, status, content type, headers, body, auth

        try:
            check()
        except Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing in this operation can be sent wrong
