"""While PostgreSQL restarts, requests get 503 with Retry-After (retry, nothing was accepted), never 500.

The chaos run saw 500s while the database started up: asyncpg's "the database system is starting up"
(SQLSTATE 57P03) and a connection reset reached the catch-all handler. These are the exceptions it saw.
"""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shared.db import is_unavailable
from shared.service import install_error_handlers


def _dbapi_error(orig: Exception, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)


STARTING_UP = _dbapi_error(asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))
SHUTTING_DOWN = _dbapi_error(asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"))
CONNECTION_LOST = _dbapi_error(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True)
TOO_MANY = _dbapi_error(asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"))
BAD_STATEMENT = _dbapi_error(asyncpg.exceptions.UndefinedColumnError('column "x" does not exist'))
DUPLICATE = IntegrityError("INSERT", None, asyncpg.exceptions.UniqueViolationError("duplicate key"))


@pytest.mark.parametrize(("exc", "unavailable"), [
    (STARTING_UP, True), (SHUTTING_DOWN, True), (CONNECTION_LOST, True), (TOO_MANY, True),
    (ConnectionResetError(104, "Connection reset by peer"), True), (ConnectionRefusedError(111, "Connection refused"), True),
    (OperationalError("SELECT 1", None, Exception("database is locked")), True),
    (BAD_STATEMENT, False), (DUPLICATE, False), (ValueError("a bug"), False),
])
def test_what_counts_as_the_database_being_away(exc: BaseException, unavailable: bool) -> None:
    assert is_unavailable(exc) is unavailable


def _client(exc: BaseException) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fails")
    async def fails() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("exc", [STARTING_UP, SHUTTING_DOWN, CONNECTION_LOST, ConnectionResetError(104, "Connection reset by peer")])
def test_a_restarting_database_is_503_with_retry_after(exc: BaseException) -> None:
    answer = _client(exc).get("/fails")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("exc", [BAD_STATEMENT, ValueError("a bug")])
def test_a_failed_statement_or_a_bug_stays_a_500(exc: BaseException) -> None:
    answer = _client(exc).get("/fails")
    assert answer.status_code == 500
    assert answer.json()["title"] == "Internal error"
