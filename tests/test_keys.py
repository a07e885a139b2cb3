"""The signing key ring (idp/keys.py) and its `flask keys` commands.

Keys are checked through independent paths: tokens signed with the ring's keys are verified
against the published JWKS as a client would import it, and kids are recomputed as RFC 7638
thumbprints of the public keys alone.
"""

from __future__ import annotations

import json
import multiprocessing
import stat
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from idp.keys import MANIFEST, KeyRing, KeyRingError
from tests.conftest import START

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}
DAY = timedelta(hours=24)
CLAIMS = {"iss": "http://localhost", "sub": "alice", "aud": "client"}


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "certs"


@pytest.fixture
def ring(folder) -> KeyRing:
    return KeyRing.load(folder, now=START)


def manifest(folder) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def save_manifest(folder, data) -> None:
    (folder / MANIFEST).write_text(json.dumps(data))


def published_kids(ring: KeyRing) -> set[str]:
    return {key["kid"] for key in ring.public_jwks()["keys"]}


def test_first_load_creates_an_rs256_and_an_es256_key_in_private_files_and_a_manifest(folder, ring):
    entries = manifest(folder)["keys"]
    assert sorted(entry["alg"] for entry in entries) == ["ES256", "RS256"]
    for entry in entries:
        assert entry["file"] == f"{entry['kid']}.pem"
        assert stat.S_IMODE((folder / entry["file"]).stat().st_mode) == 0o600
        assert entry["created_at"] == START.isoformat()
        assert entry["retired_at"] is None
    assert {ring.kid("RS256"), ring.kid("ES256")} == {entry["kid"] for entry in entries}
    assert not list(folder.glob(".*.tmp"))


def test_a_second_load_reads_the_same_keys_and_makes_none(folder, ring):
    again = KeyRing.load(folder, now=START + timedelta(hours=1))
    assert (again.kid("RS256"), again.kid("ES256")) == (ring.kid("RS256"), ring.kid("ES256"))
    assert len(list(folder.glob("*.pem"))) == 2


def _first_start(folder, barrier, results) -> None:
    barrier.wait()
    ring = KeyRing.load(folder, now=START)
    results.put((ring.kid("RS256"), ring.kid("ES256")))


def test_processes_starting_at_once_agree_on_one_ring(folder):
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(4), fork.Queue()
    workers = [fork.Process(target=_first_start, args=(folder, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    kids = {results.get(timeout=5) for _ in workers}
    assert len(kids) == 1
    assert {path.stem for path in folder.glob("*.pem")} == set(next(iter(kids)))


def test_loading_without_create_refuses_an_empty_folder(folder):
    with pytest.raises(KeyRingError, match="no signing keys"):
        KeyRing.load(folder, now=START, create=False)
    assert not folder.exists()


def test_each_kid_is_the_rfc7638_thumbprint_of_its_public_key(ring):
    for alg, cls in (("RS256", RSAKey), ("ES256", ECKey)):
        public = {k: v for k, v in ring.signing_key(alg).as_dict(private=False).items() if k not in ("kid", "alg", "use")}
        assert cls.import_key(public).thumbprint() == ring.kid(alg)


def test_the_jwks_has_no_private_members_and_marks_every_key_for_signatures(ring):
    keys = ring.public_jwks()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert not PRIVATE_MEMBERS & key.keys()
        assert key["use"] == "sig"
    assert {(key["kid"], key["alg"]) for key in keys} == {(ring.kid("RS256"), "RS256"), (ring.kid("ES256"), "ES256")}


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_token_signed_with_the_active_key_verifies_against_the_published_jwks(ring, alg):
    token = jwt.encode({"alg": alg, "kid": ring.kid(alg)}, CLAIMS, ring.signing_key(alg))
    published = KeySet.import_key_set(json.loads(ring.jwks_bytes))
    decoded = jwt.decode(token, published, algorithms=[alg])
    assert decoded.claims == CLAIMS
    assert decoded.header["kid"] == ring.kid(alg)


def test_the_jwks_bytes_are_the_json_of_the_public_jwks(ring):
    assert isinstance(ring.jwks_bytes, bytes)
    assert ring.jwks_bytes == json.dumps(ring.public_jwks()).encode()


def test_rotate_makes_new_active_keys_while_the_old_ones_stay_published(folder, ring):
    old = {alg: ring.kid(alg) for alg in ("RS256", "ES256")}
    token = jwt.encode({"alg": "RS256", "kid": old["RS256"]}, CLAIMS, ring.signing_key("RS256"))

    new = ring.rotate(now=START + timedelta(hours=1))

    assert set(new) == {"RS256", "ES256"} and not set(new.values()) & set(old.values())
    assert {alg: ring.kid(alg) for alg in new} == new
    assert published_kids(ring) == set(old.values()) | set(new.values())
    assert jwt.decode(token, ring.verification_keys(), algorithms=["RS256"]).claims == CLAIMS
    retired = {e["kid"]: e["retired_at"] for e in manifest(folder)["keys"] if e["kid"] in old.values()}
    assert set(retired.values()) == {(START + timedelta(hours=1)).isoformat()}


def test_rotations_from_two_stale_rings_lose_no_key(folder, ring):
    other = KeyRing.load(folder, now=START)
    first = ring.rotate(now=START)
    second = other.rotate(now=START)
    again = KeyRing.load(folder, now=START)
    assert {e.kid for e in again.entries} >= set(first.values()) | set(second.values())
    assert (again.kid("RS256"), again.kid("ES256")) == (second["RS256"], second["ES256"])
    assert len(again.public_jwks()["keys"]) == 6


def test_a_rotation_is_seen_by_the_next_load(folder, ring):
    new = ring.rotate(now=START)
    again = KeyRing.load(folder, now=START)
    assert (again.kid("RS256"), again.kid("ES256")) == (new["RS256"], new["ES256"])
    assert len(again.public_jwks()["keys"]) == 4


def test_a_retired_key_is_still_published_one_second_before_publish_for_has_passed(folder, ring):
    old = ring.kid("RS256")
    retired_at = START + timedelta(hours=1)
    ring.rotate(now=retired_at)

    assert ring.prune(now=retired_at + DAY - timedelta(seconds=1)) == []
    assert old in published_kids(ring)
    assert (folder / f"{old}.pem").exists()


def test_a_retired_key_is_pruned_with_its_file_exactly_when_publish_for_has_passed(folder, ring):
    old = {ring.kid("RS256"), ring.kid("ES256")}
    retired_at = START + timedelta(hours=1)
    new = ring.rotate(now=retired_at)

    assert set(ring.prune(now=retired_at + DAY)) == old

    assert published_kids(ring) == set(new.values())
    assert {e["kid"] for e in manifest(folder)["keys"]} == set(new.values())
    assert not any((folder / f"{kid}.pem").exists() for kid in old)
    assert {key.kid for key in ring.verification_keys()} == set(new.values())


def test_a_load_after_publish_for_no_longer_publishes_the_retired_keys(folder, ring):
    ring.rotate(now=START)
    later = KeyRing.load(folder, now=START + DAY)
    assert published_kids(later) == {later.kid("RS256"), later.kid("ES256")}


def test_publish_for_is_chosen_at_load(folder, ring):
    short = KeyRing.load(folder, now=START, publish_for=timedelta(minutes=10))
    old = {short.kid("RS256"), short.kid("ES256")}
    short.rotate(now=START)
    assert short.prune(now=START + timedelta(minutes=9, seconds=59)) == []
    assert set(short.prune(now=START + timedelta(minutes=10))) == old


def test_a_manifest_whose_kid_does_not_match_the_key_file_is_refused(folder, ring):
    data = manifest(folder)
    es256 = next(e for e in data["keys"] if e["alg"] == "ES256")
    es256["kid"] = "not-the-thumbprint"
    save_manifest(folder, data)
    with pytest.raises(KeyRingError, match=r"kid not-the-thumbprint does not match the key's thumbprint") as raised:
        KeyRing.load(folder, now=START)
    assert "\n" not in str(raised.value)


def test_a_manifest_naming_a_key_file_of_another_algorithm_is_refused(folder, ring):
    data = manifest(folder)
    rs256 = next(e for e in data["keys"] if e["alg"] == "RS256")
    es256 = next(e for e in data["keys"] if e["alg"] == "ES256")
    rs256["file"] = es256["file"]
    save_manifest(folder, data)
    with pytest.raises(KeyRingError, match="is not a private RS256 key"):
        KeyRing.load(folder, now=START)


def test_a_manifest_naming_a_missing_key_file_is_refused(folder, ring):
    missing = folder / f"{ring.kid('ES256')}.pem"
    missing.unlink()
    with pytest.raises(KeyRingError, match="cannot read key file .*No such file") as raised:
        KeyRing.load(folder, now=START)
    assert str(missing) in str(raised.value)


def test_a_manifest_that_is_not_json_is_refused(folder, ring):
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(KeyRingError, match="is malformed"):
        KeyRing.load(folder, now=START)


def test_a_manifest_file_outside_the_folder_is_refused(folder, ring):
    data = manifest(folder)
    data["keys"][0]["file"] = "../elsewhere.pem"
    save_manifest(folder, data)
    with pytest.raises(KeyRingError, match="bad entry"):
        KeyRing.load(folder, now=START)


def test_the_cli_rotate_exits_0_and_the_ring_then_signs_with_the_new_kid(app, folder):
    app.config["CERTS_PATH"] = folder
    before = KeyRing.load(folder, now=START).kid("RS256")

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    ring = KeyRing.load(folder, now=START)
    assert ring.kid("RS256") != before
    assert f"RS256 {ring.kid('RS256')}\n" in result.output
    assert f"ES256 {ring.kid('ES256')}\n" in result.output
    assert "Old keys stay published until 2026-01-06 09:00:00 UTC." in result.output
    token = jwt.encode({"alg": "RS256", "kid": ring.kid("RS256")}, CLAIMS, ring.signing_key("RS256"))
    assert jwt.decode(token, KeySet.import_key_set(ring.public_jwks())).header["kid"] == ring.kid("RS256")


def test_the_cli_rotate_removes_keys_no_longer_published(app, clock, folder):
    app.config["CERTS_PATH"] = folder
    first = KeyRing.load(folder, now=START).kid("RS256")
    runner = app.test_cli_runner()
    runner.invoke(args=["keys", "rotate"])
    clock.advance(hours=24)

    result = runner.invoke(args=["keys", "rotate"])

    assert result.exit_code == 0, result.output
    assert "Removed 2 key(s) retired more than 1 day ago." in result.output
    assert not (folder / f"{first}.pem").exists()


def test_the_cli_list_json_parses_and_shows_every_key(app, folder):
    app.config["CERTS_PATH"] = folder
    ring = KeyRing.load(folder, now=START)
    ring.rotate(now=START)

    result = app.test_cli_runner().invoke(args=["keys", "list", "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {row["kid"] for row in rows} == {e.kid for e in ring.entries}
    assert {row["kid"] for row in rows if row["retired_at"] is None} == {ring.kid("RS256"), ring.kid("ES256")}
    assert all(row["published"] for row in rows)


def test_the_cli_list_prints_a_table(app, folder):
    app.config["CERTS_PATH"] = folder
    ring = KeyRing.load(folder, now=START)

    result = app.test_cli_runner().invoke(args=["keys", "list"])

    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split() == ["KID", "ALG", "CREATED", "RETIRED"]
    assert any(line.startswith(ring.kid("RS256")) and "RS256" in line for line in lines)


def test_the_cli_list_fails_in_one_line_without_a_ring(app, folder):
    app.config["CERTS_PATH"] = folder
    result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no signing keys in ") and result.output.count("\n") == 1
