#!/usr/bin/env bash
# Make sure PostgreSQL's server binaries (initdb, pg_ctl) are on this machine; install Debian's package if not.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
  exit 0
fi
if [ -n "${HAILONG_PG_BIN:-}" ] && [ -x "${HAILONG_PG_BIN}/initdb" ]; then
  exit 0
fi
echo "PostgreSQL server binaries not found; installing Debian's postgresql package…"
if [ "$(id -u)" -ne 0 ]; then
  echo "error: installing needs root (apt-get); install the 'postgresql' package or set HAILONG_PG_BIN" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql > /dev/null
# The package starts a cluster of its own on 5432; the tests run their own servers, so stop it.
if command -v pg_ctlcluster > /dev/null; then
  for cluster in /etc/postgresql/*/main; do
    [ -d "$cluster" ] || continue
    version=$(basename "$(dirname "$cluster")")
    pg_ctlcluster "$version" main stop 2> /dev/null || true
  done
fi
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || { echo "error: initdb still missing after install" >&2; exit 1; }
echo "PostgreSQL server installed."
