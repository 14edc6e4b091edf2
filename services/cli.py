"""The `hailong` command: API keys, tokens, reference data and dev credentials for operators."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from shared.auth import DEV_JWT_SECRET, ROLES, issue_jwt
from shared.db import prepare_database, run_sync
from shared.settings import get_settings

app = typer.Typer(help="Hài Lòng operations.", no_args_is_help=True)
keys = typer.Typer(help="API keys of machine clients (kiosks, the portal).", no_args_is_help=True)
units = typer.Typer(help="The unit registry.", no_args_is_help=True)
app.add_typer(keys, name="keys")
app.add_typer(units, name="units")


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}")
    return role


async def _create_key(role: str, name: str, unit: str | None) -> str:
    from services.intake.keys import create_api_key

    settings = get_settings()
    engine = await prepare_database(settings.database_url_for("intake"), "intake")
    try:
        async with engine.begin() as conn:
            return (await create_api_key(conn, role, name, unit)).token
    finally:
        await engine.dispose()


async def _create_keys(role: str, name: str, unit: str | None, count: int) -> list[str]:
    from services.intake.keys import create_api_key

    settings = get_settings()
    engine = await prepare_database(settings.database_url_for("intake"), "intake")
    try:
        async with engine.begin() as conn:
            return [(await create_api_key(conn, role, f"{name} {n + 1}", unit)).token for n in range(count)]
    finally:
        await engine.dispose()


@keys.command("create")
def keys_create(
    role: Annotated[str, typer.Argument(callback=_check_role, help="kiosk | portal | admin | …")],
    name: Annotated[str, typer.Option(help="who holds the key, for the audit trail")] = "unnamed",
    unit: Annotated[str | None, typer.Option(help="unit subtree the key may act for")] = None,
) -> None:
    """Issue an API key; only its hash is stored, so copy it now."""
    typer.echo(run_sync(_create_key(role, name, unit)))


@app.command("token")
def token(
    role: Annotated[str, typer.Argument(callback=_check_role)],
    subject: Annotated[str, typer.Option(help="the person's identifier")] = "operator",
    unit: Annotated[str | None, typer.Option(help="unit scope claim")] = None,
    days: Annotated[int, typer.Option(min=1, max=365)] = 30,
) -> None:
    """Sign a JWT for a person (role and unit_scope claims) with HAILONG_JWT_SECRET."""
    settings = get_settings()
    if not settings.jwt_secret and not settings.dev_mode:
        raise typer.BadParameter("set HAILONG_JWT_SECRET (or HAILONG_DEV_MODE=true)")
    typer.echo(issue_jwt(settings.jwt_secret or DEV_JWT_SECRET, subject, role, unit, timedelta(days=days)))


async def _load_reference(csv_path: Path | None) -> tuple[int, int]:
    from services.intake.handlers import load_units
    from services.intake.reference import DEMO_CSV, administrative_units, csv_units

    settings = get_settings()
    rows = list(administrative_units()) + list(csv_units(csv_path or DEMO_CSV))
    engine = await prepare_database(settings.database_url_for("intake"), "intake")
    try:
        async with engine.begin() as conn:
            return len(rows), await load_units(conn, settings, rows)
    finally:
        await engine.dispose()


@units.command("load-reference")
def load_reference(
    csv_path: Annotated[Path | None, typer.Option("--csv", exists=True, dir_okay=False, help="departments and centres")] = None,
) -> None:
    """Load provinces and wards (vietnam-provinces) and the operator's CSV into the registry."""
    total, changed = run_sync(_load_reference(csv_path))
    typer.echo(f"{total} reference units, {changed} new or changed (published on units.v1)")


@app.command("dev-credentials")
def dev_credentials(
    out: Annotated[Path, typer.Option(help="where to write them")] = Path("var/dev-credentials.json"),
    kiosk_unit: str = "79.TTPVHCC",
) -> None:
    """Write the credentials a new user needs to try the API (dev mode only)."""
    settings = get_settings()
    if not settings.dev_mode:
        raise typer.BadParameter("dev credentials are for HAILONG_DEV_MODE=true only")
    secret = settings.jwt_secret or DEV_JWT_SECRET
    credentials = {
        "admin": issue_jwt(secret, "dev-admin", "admin"),
        "portal": run_sync(_create_key("portal", "dev portal", None)),
        "kiosk": {"key": run_sync(_create_key("kiosk", f"dev kiosk {kiosk_unit}", kiosk_unit)), "unit_code": kiosk_unit},
        "unit_head": {"token": issue_jwt(secret, "dev-unit-head", "unit_head", kiosk_unit), "unit_code": kiosk_unit},
        "operator": issue_jwt(secret, "dev-operator", "operator"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(credentials, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.chmod(0o600)
    typer.echo(str(out))


@app.command("topics")
def topics_create(
    partitions: Annotated[int, typer.Option(min=1, help="partitions per topic (consumers scale up to this)")] = 12,
    replication: Annotated[int, typer.Option(min=1, help="replication factor (3 on a production cluster)")] = 3,
) -> None:
    """Create every topic of the contract and its .dlq twin on HAILONG_KAFKA_BOOTSTRAP, idempotently."""
    from deploy.kafka.runner import ensure_topics
    from shared.topics import topic_specs

    settings = get_settings()
    specs = topic_specs(settings.topic_prefix, partitions)
    run_sync(ensure_topics(settings.kafka_bootstrap, specs, timeout=60, replication_factor=replication))
    typer.echo(f"{len(specs)} topics present on {settings.kafka_bootstrap} (prefix {settings.topic_prefix!r})")


# --- intake: the kiosk simulator ---
simulate = typer.Typer(help="Load simulators that check the system end to end.", no_args_is_help=True)
app.add_typer(simulate, name="simulate")


@simulate.command("kiosk")
def simulate_kiosk(
    rate: Annotated[float, typer.Option(min=0.1, max=5000, help="ratings per second")] = 5.0,
    duration: Annotated[float, typer.Option(min=1, max=3600, help="seconds of posting")] = 30.0,
    kiosks: Annotated[int | None, typer.Option(min=1, help="devices to spread the ratings over (default: enough to avoid burst flags)")] = None,
    unit: Annotated[str | None, typer.Option(help="unit the kiosks serve (default: the dev kiosk's)")] = None,
    credentials: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="from `make run`")] = Path("var/dev-credentials.json"),
    intake_url: Annotated[str | None, typer.Option(help="default: 127.0.0.1 and HAILONG_INTAKE_PORT")] = None,
    scoring_url: Annotated[str | None, typer.Option(help="default: 127.0.0.1 and HAILONG_SCORING_PORT")] = None,
    quiet: Annotated[float, typer.Option(min=1, help="seconds to wait for the counts to settle")] = 30.0,
    kiosk_keys: Annotated[int | None, typer.Option(min=1, help="API keys to issue for the kiosks (default: enough for the rate limit)")] = None,
) -> None:
    """Post ratings like kiosks (retrying timeouts with the same Idempotency-Key), then check that intake,
    the ratings topic and scoring count the same; exit 1 when they disagree."""
    from services.intake.simulator import Options
    from services.intake.simulator import simulate_kiosk as run_simulation
    from shared.topics import RATINGS

    settings = get_settings()
    unit = unit or json.loads(credentials.read_text(encoding="utf-8"))["kiosk"]["unit_code"]
    # Each real kiosk has its own key and so its own rate limit (HAILONG_INTAKE_RATE_LIMIT_KIOSK, 2/s by
    # default): issue one per simulated kiosk, directly in intake's database as `hailong keys create` does.
    count = kiosk_keys or max(1, int(rate / 1.5) + 1)
    keys = run_sync(_create_keys("kiosk", "simulated kiosk", unit, count))
    options = Options(
        intake_url=intake_url or f"http://127.0.0.1:{settings.intake_port}",
        scoring_url=scoring_url or f"http://127.0.0.1:{settings.scoring_port}",
        credentials=credentials, bootstrap=settings.kafka_bootstrap, ratings_topic=settings.topic(RATINGS),
        rate=rate, duration=duration, kiosks=kiosks, unit_code=unit, quiet_seconds=quiet, kiosk_keys=keys,
    )
    raise typer.Exit(run_simulation(options, typer.echo))


@app.command("asyncapi")
def asyncapi(out: Annotated[Path, typer.Option(help="where to write the document")] = Path("docs/asyncapi.json")) -> None:
    """Regenerate the AsyncAPI document of the events from their schemas."""
    from shared.asyncapi import asyncapi_document

    out.write_text(json.dumps(asyncapi_document(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    typer.echo(str(out))


# --- scoring (issue 4) ---
scoring = typer.Typer(help="Scoring operations.", no_args_is_help=True)
app.add_typer(scoring, name="scoring")


@scoring.command("rebuild")
def scoring_rebuild(
    from_topics: Annotated[bool, typer.Option("--from-topics", help="replay the topics from offset zero (stop the service first)")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask before clearing scoring's state")] = False,
    publish: Annotated[bool, typer.Option(help="score every figure now (events wait in the outbox)")] = True,
) -> None:
    """Recompute every aggregate from the contributions, or from the topics at offset zero."""
    from services.scoring.rebuild import rebuild_command

    if from_topics and not yes:
        typer.confirm("Clear scoring's state and replay its topics from offset zero?", abort=True)
    typer.echo(rebuild_command(get_settings(), from_topics=from_topics, publish=publish))


if __name__ == "__main__":
    app()
