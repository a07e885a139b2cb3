"""The import rule: the domain (directory/) knows nothing of the web or the protocols."""

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parent.parent / "directory"
FORBIDDEN = ("flask", "werkzeug", "authlib", "saml2", "idp")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda p: p.name)
def test_the_domain_imports_nothing_from_the_web_or_protocol_layers(path):
    offending = {name for name in imported_modules(path) if name.split(".")[0] in FORBIDDEN}
    assert not offending, f"{path.name} imports {sorted(offending)}"


def test_the_rule_catches_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from flask import request\nimport idp.portal\n")
    assert {"flask", "idp.portal"} <= imported_modules(sample)
