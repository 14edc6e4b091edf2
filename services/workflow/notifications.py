"""Notifications: queued in the transaction that caused them, sent by a worker over SMTP (and a webhook).

The unit head hears of a ticket when it opens, two working days before its deadline and when it is
breached; Home Affairs or the People's Committee hear of escalations. A row per message and channel,
deduplicated by key, so a redelivered event or a second replica never queues the same message twice.
Sending is at least once: a crash between the SMTP answer and the database update resends, with
the same Message-ID so mail clients fold the copies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.workflow import store
from shared.aio import wait_event
from shared.db import upsert_statement
from shared.logging import get_logger
from shared.periods import local_time
from shared.settings import Settings

log = get_logger(__name__)
EMAIL, WEBHOOK = "email", "webhook"
MAX_ATTEMPTS = 10
WAKEUP = "notifications_wakeup"
CATEGORY_NAMES = {
    "service_conditions": "điều kiện phục vụ (trang thiết bị, chi phí ngoài quy định, thái độ)",
    "procedure": "thủ tục, thành phần hồ sơ, thời gian giải quyết",
    "unit_plan": "kế hoạch khắc phục của đơn vị",
    "apology_letter": "thư xin lỗi vì hồ sơ trễ hạn",
    "repeated_dissatisfaction": "không hài lòng hai năm liên tiếp",
    "officer_review": "xem xét cán bộ không hài lòng hai năm liên tiếp",
}
HEADLINES = {
    "opened": "Phiếu khắc phục mới / New remediation ticket",
    "due_soon": "Sắp đến hạn / Due in two working days",
    "breached": "Quá hạn / Deadline missed",
    "escalated": "Chuyển cấp trên / Escalated",
}


async def unit_head_email(conn: AsyncConnection, unit_code: str) -> str | None:
    """The contact of the unit, or of the nearest unit above it that has one."""
    chain = store.ancestors_query(unit_code)
    contacts = store.unit_contacts
    return await conn.scalar(
        sa.select(contacts.c.head_email).join(chain, chain.c.code == contacts.c.unit_code).order_by(chain.c.depth).limit(1)
    )


def _text(row: Any, kind: str, settings: Settings) -> tuple[str, str]:
    due = local_time(row.due_at).strftime("%d/%m/%Y %H:%M")
    subject = f"[Hài Lòng] {HEADLINES[kind]}: {row.unit_code} — {row.category}, hạn {due}"
    lines = [
        HEADLINES[kind],
        "",
        f"Đơn vị / unit: {row.unit_code}",
        f"Loại / category: {row.category} — {CATEGORY_NAMES.get(row.category, row.category)}",
        f"Mức độ / severity: {row.severity}",
        f"Trạng thái / status: {row.status}",
        f"Hạn xử lý / due: {due} (giờ Việt Nam)",
        f"Phiếu / ticket: {row.id}",
    ]
    if row.escalated_to:
        lines.append(f"Đã chuyển / escalated to: {row.escalated_to}")
    if settings.public_base_url:
        lines.append(f"{settings.public_base_url.rstrip('/')}/v1/tickets/{row.id}")
    return subject, "\n".join(lines) + "\n"


async def _queue(conn: AsyncConnection, settings: Settings, row: Any, kind: str, marker: str, emails: list[str]) -> None:
    subject, body = _text(row, kind, settings)
    now = datetime.now(timezone.utc)
    targets = [(EMAIL, address) for address in emails if address]
    if settings.notify_webhook_url and not row.restricted:
        targets.append((WEBHOOK, settings.notify_webhook_url))
    if not targets:
        log.info("no recipient for a notification", ticket=row.id, kind=kind, unit=row.unit_code)
        return
    keys = ["dedup_key"]
    statement = upsert_statement(store.notifications, keys, keys, conn.dialect.name)
    await conn.execute(statement, [
        {"dedup_key": f"{row.id}:{kind}:{marker}:{channel}:{recipient}"[:200], "ticket_id": row.id, "kind": kind,
         "channel": channel, "recipient": recipient, "subject": subject, "body": body, "status": "pending",
         "attempts": 0, "next_attempt_at": now, "created_at": now}
        for channel, recipient in targets
    ])


async def ticket_opened(conn: AsyncConnection, settings: Settings, row: Any) -> None:
    await _queue(conn, settings, row, "opened", "", [await unit_head_email(conn, row.unit_code) or ""])


async def ticket_due_soon(conn: AsyncConnection, settings: Settings, row: Any) -> None:
    await _queue(conn, settings, row, "due_soon", row.due_at.isoformat(), [await unit_head_email(conn, row.unit_code) or ""])


async def ticket_breached(conn: AsyncConnection, settings: Settings, row: Any) -> None:
    await _queue(conn, settings, row, "breached", row.due_at.isoformat(), [await unit_head_email(conn, row.unit_code) or ""])


async def ticket_escalated(conn: AsyncConnection, settings: Settings, row: Any) -> None:
    address = {"home_affairs": settings.home_affairs_email, "peoples_committee": settings.peoples_committee_email}.get(row.escalated_to or "")
    await _queue(conn, settings, row, "escalated", row.escalated_to or "", [address or ""])


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Sender:
    """Sends one queued notification over its channel; raises on failure."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    async def send(self, row: Any) -> None:
        if row.channel == EMAIL:
            await self._email(row)
        else:
            await self._webhook(row)

    async def _email(self, row: Any) -> None:
        settings = self.settings
        if not settings.smtp_host:
            raise NotConfigured("HAILONG_SMTP_HOST is not set")
        message = EmailMessage()
        message["From"] = settings.mail_from
        message["To"] = row.recipient
        message["Subject"] = row.subject
        message["Message-ID"] = f"<notification-{row.id}@hailong>"
        message.set_content(row.body)
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port, username=settings.smtp_username,
            password=settings.smtp_password, start_tls=settings.smtp_starttls, timeout=settings.smtp_timeout_seconds,
        )

    async def _webhook(self, row: Any) -> None:
        body = orjson.dumps({"notification_id": row.id, "ticket_id": row.ticket_id, "kind": row.kind,
                             "subject": row.subject, "text": row.body})
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"notification-{row.id}"}
        if self.settings.notify_webhook_secret:
            headers["X-Hailong-Signature"] = signature(self.settings.notify_webhook_secret, body)
        response = await self.http.post(row.recipient, content=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered HTTP {response.status_code}")


class NotConfigured(Exception):
    """The channel is not set up here: the message is kept as skipped, not retried."""


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** attempts))


async def send_due(engine: AsyncEngine, sender: Sender, now: datetime, limit: int = 20) -> int:
    """Send what is due; rows are claimed FOR UPDATE SKIP LOCKED so replicas share the queue."""
    table = store.notifications
    async with engine.begin() as conn:
        query = (
            sa.select(table).where(table.c.status == "pending", table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at, table.c.id).limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = (await conn.execute(query)).all()
        for row in rows:
            changes: dict[str, Any]
            try:
                await sender.send(row)
                changes = {"status": "sent", "sent_at": datetime.now(timezone.utc), "attempts": row.attempts + 1, "last_error": None}
            except NotConfigured as exc:
                changes = {"status": "skipped", "last_error": str(exc)}
            except Exception as exc:  # the server refused or is down: try again later, then give up visibly
                attempts = row.attempts + 1
                failed = attempts >= MAX_ATTEMPTS
                changes = {"status": "failed" if failed else "pending", "attempts": attempts,
                           "next_attempt_at": now + backoff(attempts), "last_error": f"{type(exc).__name__}: {exc}"[:1000]}
                log.warning("notification not sent", id=row.id, channel=row.channel, attempts=attempts, error=repr(exc)[:300])
            await conn.execute(table.update().where(table.c.id == row.id).values(**changes))
    return len(rows)


async def run_sender(engine: AsyncEngine, settings: Settings, clock: Callable[[], datetime], wakeup: asyncio.Event,
                     poll_seconds: float = 2.0) -> None:
    async with httpx.AsyncClient(timeout=settings.smtp_timeout_seconds) as http:
        sender = Sender(settings, http)
        while True:
            try:
                if await send_due(engine, sender, clock()):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database trouble: keep the loop alive
                log.warning("notification loop failed; will retry", error=repr(exc)[:300])
            await wait_event(wakeup, poll_seconds)
            wakeup.clear()
