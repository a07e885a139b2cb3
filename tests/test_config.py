"""Configuration from IDP_* variables: defaults, derived values, and clear errors."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from idp import config
from tests.conftest import Portal
from tests.factories import make_user, session_rows

ROOT = Path(__file__).resolve().parent.parent


def load(tmp_path, **environ):
    return config.load(environ, None, str(tmp_path / "instance"))


def test_defaults_give_a_local_issuer_and_an_sqlite_file_under_instance(tmp_path):
    loaded = load(tmp_path)
    assert loaded["ISSUER"] == "http://127.0.0.1:8000"
    assert loaded["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'instance' / 'directory.sqlite3'}"
    assert (loaded["TRUSTED_PROXIES"], loaded["DIRECTORY_COOKIE"]) == (0, "idp_session")


def test_a_secret_key_is_generated_once_under_instance_readable_only_by_its_owner(tmp_path):
    first = load(tmp_path)["SECRET_KEY"]
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load(tmp_path)["SECRET_KEY"] == first and len(first) >= 32


def test_a_postgres_url_uses_the_installed_psycopg_driver(tmp_path):
    loaded = load(tmp_path, IDP_DATABASE_URL="postgresql://postgres@127.0.0.1/test")
    assert loaded["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://postgres@127.0.0.1/test"


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("IDP_TRUSTED_PROXIES", "two", "IDP_TRUSTED_PROXIES must be a whole number"),
        ("IDP_TRUSTED_PROXIES", "-1", "IDP_TRUSTED_PROXIES must be between 0 and 10"),
        ("IDP_ISSUER", "ftp://id.example", "IDP_ISSUER must be an http(s) URL"),
        ("IDP_ISSUER", "https://id.example/?x=1", "IDP_ISSUER must be an http(s) URL"),
        ("IDP_SECRET_KEY", "short", "IDP_SECRET_KEY must be at least 32 characters"),
        ("IDP_DATABASE_URL", "mysql://db/x", "IDP_DATABASE_URL must be"),
        ("IDP_SWEEP_INTERVAL", "soon", "IDP_SWEEP_INTERVAL must be a whole number"),
    ],
)
def test_malformed_settings_are_refused_with_the_variable_named(tmp_path, variable, value, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path, **{variable: value})


def test_the_server_refuses_to_start_with_a_one_line_configuration_error(tmp_path):
    environ = {**os.environ, "IDP_TRUSTED_PROXIES": "two", "IDP_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "Configuration error: IDP_TRUSTED_PROXIES must be a whole number, got 'two'"


@pytest.mark.parametrize("proxies, recorded", [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_the_client_address_comes_from_trusted_proxies_only(make_app, proxies, recorded):
    app = make_app(TRUSTED_PROXIES=proxies)
    with app.app_context():
        make_user("alice")
        browser = Portal(app.test_client())
        browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
        browser.login()
        assert session_rows()[0].ip_address == recorded
