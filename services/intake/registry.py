"""Intake's in-memory view of its registry (unit tree, officers' devices and phone hashes) and of API keys.

The hot path (every rating) checks the caller's unit scope and the self-rating rules; doing that from
memory instead of several queries per request is what keeps single posts fast. This process updates the
view after each of its own commits; changes made by other replicas or by the `hailong` CLI arrive with
the periodic reload (`HAILONG_INTAKE_CACHE_SECONDS`). A revoked API key therefore stops working within
that many seconds; a new key works at once (only keys found valid are remembered).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store
from shared.auth import Principal

MAX_UNIT_DEPTH = 12


@dataclass
class Registry:
    parents: dict[str, str | None] = field(default_factory=dict)  # unit code → parent code
    device_owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # device → (unit, officer)
    phone_owners: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # phone hash → {(unit, officer)}
    loaded_at: float = 0.0

    async def load(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            units = (await conn.execute(sa.select(store.units.c.code, store.units.c.parent_code))).all()
            devices = (await conn.execute(sa.select(store.officer_devices))).all()
            phones = (
                await conn.execute(
                    sa.select(store.officers.c.unit_code, store.officers.c.officer_id, store.officers.c.phone_hash).where(
                        store.officers.c.phone_hash.is_not(None), store.officers.c.active.is_(True)
                    )
                )
            ).all()
        self.parents = {row.code: row.parent_code for row in units}
        self.device_owners = {row.device_id: (row.unit_code, row.officer_id) for row in devices}
        owners: dict[str, set[tuple[str, str]]] = {}
        for row in phones:
            owners.setdefault(row.phone_hash, set()).add((row.unit_code, row.officer_id))
        self.phone_owners = owners
        self.loaded_at = time.monotonic()

    def has_unit(self, code: str) -> bool:
        return code in self.parents

    def within_scope(self, unit_code: str, scope: str | None) -> bool:
        """True when `unit_code` is `scope` or lies below it in the unit tree."""
        if scope is None:
            return True
        current: str | None = unit_code
        for _ in range(MAX_UNIT_DEPTH):
            if current is None:
                return False
            if current == scope:
                return True
            current = self.parents.get(current)
        return False

    def note_unit(self, code: str, parent_code: str | None) -> None:
        self.parents[code] = parent_code

    def note_officer(self, unit_code: str, officer_id: str, device_ids: list[str], phone_hash: str | None, active: bool) -> None:
        who = (unit_code, officer_id)
        self.device_owners = {d: owner for d, owner in self.device_owners.items() if owner != who}
        for owners in self.phone_owners.values():
            owners.discard(who)
        if active:
            for device in device_ids:
                self.device_owners[device] = who
            if phone_hash:
                self.phone_owners.setdefault(phone_hash, set()).add(who)

    def staff_device(self, device_id: str | None, unit_code: str, officer_ids: list[str]) -> str | None:
        """The officer of the unit (or of the dossier) that `device_id` is registered to, if any."""
        owner = self.device_owners.get(device_id) if device_id else None
        if owner is not None and (owner[0] == unit_code or owner[1] in officer_ids):
            return owner[1]
        return None

    def staff_phone(self, phone_hash: str | None, unit_code: str, officer_ids: list[str]) -> str | None:
        """The officer of the unit (or of the dossier) whose phone hashes to `phone_hash`, if any."""
        for owner_unit, officer in sorted(self.phone_owners.get(phone_hash, ())) if phone_hash else ():
            if owner_unit == unit_code or officer in officer_ids:
                return officer
        return None


@dataclass
class KeyCache:
    """Principals of API keys found valid, for `ttl` seconds (the key table is read once per key, not per request)."""

    ttl: float
    entries: dict[tuple[str, str], tuple[float, Principal]] = field(default_factory=dict)

    def get(self, key_id: str, secret: str) -> Principal | None:
        entry = self.entries.get((key_id, secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_id: str, secret: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[(key_id, secret)] = (time.monotonic() + self.ttl, principal)
