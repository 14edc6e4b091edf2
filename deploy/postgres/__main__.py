"""`python -m deploy.postgres start|stop`: a local PostgreSQL in var/postgres for running on PostgreSQL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from deploy.postgres.runner import ThrowawayPostgres

DATA_DIR = Path(__file__).resolve().parents[2] / "var" / "postgres" / "data"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("start", "stop"):
        print("usage: python -m deploy.postgres start|stop", file=sys.stderr)
        return 2
    server = ThrowawayPostgres(DATA_DIR, int(os.environ.get("HAILONG_PG_PORT", "5433")))
    if argv[0] == "start":
        server.start()
        print(f"PostgreSQL on 127.0.0.1:{server.port}; use\n  export HAILONG_DATABASE_URL={server.url}")
    else:
        server.stop(cleanup=False)
        print("PostgreSQL stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
