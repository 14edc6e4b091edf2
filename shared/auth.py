"""Who is calling: API keys for machines (stored as hashes) and JWTs for people, with role and unit scope."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

import jwt

ROLES = (
    "admin", "portal", "kiosk", "unit_head", "officer", "inspector", "home_affairs", "operator", "peoples_committee",
)
API_KEY_PREFIX = "hl"
DEV_JWT_SECRET = "hailong-dev-only-insecure-jwt-secret-do-not-deploy"
JWT_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    unit_scope: str | None  # None: every unit
    via: str  # "api_key" | "jwt"


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    token: str  # shown once; only its hash is stored
    secret_hash: str


def hash_secret(secret: str) -> str:
    # API key secrets are 256-bit random, so a plain SHA-256 resists guessing; no slow hash needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key() -> IssuedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return IssuedKey(key_id, f"{API_KEY_PREFIX}_{key_id}_{secret}", hash_secret(secret))


def split_api_key(token: str) -> tuple[str, str] | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


class ApiKeyStore(Protocol):
    async def principal_for(self, key_id: str, secret: str) -> Principal | None: ...


def issue_jwt(secret: str, subject: str, role: str, unit_scope: str | None = None, ttl: timedelta = timedelta(days=30)) -> str:
    now = datetime.now(timezone.utc)
    claims = {"sub": subject, "role": role, "unit_scope": unit_scope, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def verify_jwt(secret: str, token: str) -> Principal | None:
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    role = claims.get("role")
    if role not in ROLES:
        return None
    scope = claims.get("unit_scope")
    return Principal(str(claims["sub"]), role, scope if isinstance(scope, str) and scope else None, "jwt")


def respondent_hash(key: str, value: str) -> str:
    """Keyed hash of a respondent identifier (phone, ID number): the clear value is never stored."""
    normalised = "".join(ch for ch in value if ch.isalnum() or ch == "+").lower()
    return hmac.new(key.encode(), normalised.encode(), hashlib.sha256).hexdigest()
