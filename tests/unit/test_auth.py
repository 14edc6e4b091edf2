"""API keys are stored as hashes, JWTs carry role and unit scope, respondents become keyed hashes."""

from datetime import timedelta

from shared.auth import issue_api_key, issue_jwt, respondent_hash, secret_matches, split_api_key, verify_jwt

SECRET = "a-jwt-secret-of-at-least-thirty-two-bytes"


def test_an_issued_key_verifies_against_its_stored_hash_only() -> None:
    issued = issue_api_key()
    key_id, secret = split_api_key(issued.token)
    assert key_id == issued.key_id
    assert secret not in issued.secret_hash
    assert secret_matches(secret, issued.secret_hash)
    assert not secret_matches(secret + "x", issued.secret_hash)


def test_malformed_keys_are_not_keys() -> None:
    assert split_api_key("Bearer nonsense") is None
    assert split_api_key("hl__") is None


def test_jwt_round_trip_and_rejections() -> None:
    token = issue_jwt(SECRET, "alice", "unit_head", "79.SNV")
    principal = verify_jwt(SECRET, token)
    assert principal is not None and (principal.role, principal.unit_scope) == ("unit_head", "79.SNV")
    assert verify_jwt("another-secret-of-at-least-thirty-two-b", token) is None
    assert verify_jwt(SECRET, issue_jwt(SECRET, "bob", "emperor")) is None
    assert verify_jwt(SECRET, issue_jwt(SECRET, "carol", "admin", ttl=timedelta(seconds=-1))) is None


def test_respondent_hash_is_keyed_and_ignores_formatting() -> None:
    a = respondent_hash("key-1", "+84 901 234 567")
    assert a == respondent_hash("key-1", "+84901234567")
    assert a != respondent_hash("key-2", "+84901234567")
    assert "901234567" not in a
