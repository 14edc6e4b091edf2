"""API keys of machine clients (kiosks, the portal), kept in intake's database as hashes only."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake import store
from services.intake.registry import KeyCache
from shared.auth import IssuedKey, Principal, hash_secret, issue_api_key, secret_matches


class DatabaseApiKeyStore:
    def __init__(self, engine: AsyncEngine, cache_seconds: float = 0.0) -> None:
        self.engine = engine
        self.cache = KeyCache(cache_seconds)

    async def principal_for(self, key_id: str, secret: str) -> Principal | None:
        secret_hash = hash_secret(secret)
        cached = self.cache.get(key_id, secret_hash)
        if cached is not None:
            return cached
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(store.api_keys).where(store.api_keys.c.key_id == key_id, store.api_keys.c.revoked_at.is_(None))
                )
            ).first()
        if row is None or not secret_matches(secret, row.secret_hash):
            return None
        principal = Principal(f"key:{row.key_id}", row.role, row.unit_scope, "api_key")
        self.cache.put(key_id, secret_hash, principal)
        return principal


async def create_api_key(conn: AsyncConnection, role: str, name: str, unit_scope: str | None) -> IssuedKey:
    issued = issue_api_key()
    await conn.execute(
        store.api_keys.insert().values(
            key_id=issued.key_id, secret_hash=issued.secret_hash, role=role, unit_scope=unit_scope,
            name=name, created_at=datetime.now(timezone.utc),
        )
    )
    return issued
