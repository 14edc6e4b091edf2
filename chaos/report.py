"""The chaos run's report: tables on the console, results in chaos/results/*.json, docs/reliability.md.

docs/reliability.md is rebuilt from the latest results of both parts (the fault run and schemathesis), so
running one part again keeps the other's figures, and from chaos/notes.md (what the runs found, by hand).
"""

from __future__ import annotations

import json
from collections import Counter
import os
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "chaos" / "results"
NOTES = ROOT / "chaos" / "notes.md"
REPORT = ROOT / "docs" / "reliability.md"
console = Console(highlight=False, width=200)  # a wide table also when the output is a log file


def machine() -> dict[str, Any]:
    from deploy.kafka.runner import KAFKA_VERSION

    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cores": os.cpu_count(), "memory_gib": round(memory_kb / 1024 / 1024, 1), "python": platform.python_version(),
            "kafka": KAFKA_VERSION, "postgresql": _postgres_version(), "schemathesis": version("schemathesis")}


def _postgres_version() -> str:
    try:
        from deploy.postgres.runner import server_bin_dir

        return server_bin_dir().parts[-2]
    except Exception:
        return "?"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# --- console -------------------------------------------------------------------------------------------------


def fault_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for number, fault in enumerate(run["faults"], 1):
        started = fault.get("started_at")
        back = fault.get("back_at")
        ready = fault.get("ready_at")
        rows.append([
            str(number), fault["target"], fault["action"], f"{fault['at_rating']:,}",
            f"{started:.1f}s" if started is not None else "—", f"{fault['down_seconds']:.1f}s",
            f"{back - started:.1f}s" if back is not None and started is not None else "—",
            f"{ready - started:.1f}s" if ready is not None and started is not None else "—",
            f"{fault['acknowledged_before']:,}" if fault.get("acknowledged_before") is not None else "—",
            fault.get("error") or "",
        ])
    return rows


FAULT_HEADERS = ["#", "what", "how", "planned after rating", "struck at", "down for", "back after", "all ready after",
                 "ratings acknowledged before", "error"]


def invariant_rows(run: dict[str, Any]) -> list[list[str]]:
    return [[v["name"], "PASS" if v["held"] else "FAIL", v["summary"]] for v in run["invariants"]]


def print_run(run: dict[str, Any]) -> None:
    console.print(f"\n[bold]Chaos run[/bold] seed {run['seed']}: {run['ratings']['planned']:,} ratings at "
                  f"{run['rate']:g}/s, posted in {run['posting_seconds']:.0f}s, quiet {run['quiet_seconds']:.0f}s later; "
                  f"whole run {run['duration_seconds'] / 60:.1f} min")
    faults = Table(title="Faults injected (times in seconds from the first rating)")
    errors = any(f.get("error") for f in run["faults"])
    for header in FAULT_HEADERS if errors else FAULT_HEADERS[:-1]:
        faults.add_column(header)
    for row in fault_rows(run):
        faults.add_row(*(row if errors else row[:-1]))
    console.print(faults)
    table = Table(title="Invariants")
    for header in ("invariant", "result", "numbers"):
        table.add_column(header, overflow="fold")
    for name, held, summary in invariant_rows(run):
        table.add_row(name, f"[green]{held}[/green]" if held == "PASS" else f"[red]{held}[/red]", summary)
    console.print(table)
    for verdict in run["invariants"]:
        for problem in verdict["problems"][:10]:
            console.print(f"  [red]{verdict['name']}[/red]: {problem}")


def print_fuzz(fuzz: dict[str, Any]) -> None:
    table = Table(title=f"Schemathesis (seed {fuzz['seed']})")
    for header in FUZZ_HEADERS:
        table.add_column(header)
    for row in fuzz_rows(fuzz):
        table.add_row(*row)
    console.print(table)
    for service in fuzz["services"]:
        for finding in service["findings"]:
            console.print(f"  [red]{service['service']}[/red] {finding['operation']} ({finding['mode']}): {finding['problem']}")


FUZZ_HEADERS = ["service", "operations", "cases", "2xx", "4xx", "5xx or no answer", "findings", "seconds"]


def fuzz_rows(fuzz: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in fuzz["services"]:
        by_status = {int(k): v for k, v in s["by_status"].items()}
        rows.append([
            s["service"], str(s["operations"]), f"{s['cases']:,}",
            f"{sum(n for c, n in by_status.items() if c < 300):,}", f"{sum(n for c, n in by_status.items() if 400 <= c < 500):,}",
            f"{sum(n for c, n in by_status.items() if c >= 500 or c == 0):,}", str(len(s["findings"])), f"{s['seconds']:.0f}",
        ])
    return rows


# --- docs/reliability.md ----------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


INTRO = """# Reliability

Users trust a rating system only if it loses nothing when parts of it fail. `make chaos` makes that
measurable: it runs the whole system on real parts — a throwaway PostgreSQL, a real Kafka broker, the four
services as real processes, and real HTTP servers playing the institution map and the national portal —
and while a kiosk fleet posts 20,000 ratings (with their dossiers) it kills each service with SIGKILL once,
kills the Kafka broker once and crashes PostgreSQL once (`pg_ctl stop -m immediate`), each at a random
moment, restarting each. Then it waits for quiet (no unsent outbox row, every stored consumer offset at
its topic's end, no dirty score, no push due) and checks what must hold. It also drives schemathesis
against the four OpenAPI documents. This page is rebuilt by every run from `chaos/results/*.json`.

## What the run proves

- **Every rating answered 202 is counted exactly once**: the kiosks' own record of 202s (and of the
  409s that name the rating an earlier, timed-out attempt created) is compared with `ratings.v1` read from
  the beginning by an outside consumer, and with scoring's counts of ratings and dossiers for every unit
  (and province) and every month, quarter, half and year the run touched.
- **Nothing answered 5xx was counted**: ratings whose kiosk gave up after a 5xx or a refused connection,
  never answered 202 under the same Idempotency-Key, are not on the topic and not in any count. A rating
  whose last attempt got no answer at all may or may not have been accepted; the report gives both numbers.
- **The institution map holds the newest version for every unit and period**: the map (HCMC 104/2024
  figures) and the portal (QĐ 766 satisfaction figures) hold, for every unit and period scoring has a
  figure for, that figure's current version and rating count — though both targets answered 5% of pushes
  with 503 or 500 — and the publisher dead-lettered nothing, signed every push and never sent one out of order.
- **No ticket was opened twice for the same cause**: one remediation ticket per unit, category and month,
  with each counted dissatisfied rating attached once; one apology letter per late dossier; one unit plan
  per unit at a time.
- **Every DLQ is empty**: no event was dead-lettered, though every consumer met a database crash and a
  broker crash mid-batch.

The kiosks behave like real ones: they retry timeouts, 429s and 5xx with the same Idempotency-Key, with
backoff and jitter, honouring Retry-After; some give up after one attempt; some send an answered request
again; some citizens press twice (a new key: 409 naming the first rating); some ratings arrive before
their dossier; some dossiers are late; a sixth of the ratings are dissatisfied with reasons; the portal
posts some ratings with the dossier inline.

## How to run and replay it

```sh
make chaos                       # fresh seed, printed at the start; 10–15 minutes on 2 cores
make chaos SEED=1234             # replay: the same ratings, faults, moments and schemathesis cases
make chaos CHAOS_ARGS="--ratings 2000 --rate 20"   # a smaller run
make fuzz                        # schemathesis only
```

The seed fixes every rating's content and every kiosk's behaviour, which part fails, when (seconds from
the first rating) and for how long, the push targets' injected failures and schemathesis's generated
cases; the machine's timing still differs from run to run. Each run keeps its logs, the kiosks' ledger
(every attempt and answer, `ledger.jsonl`) and the broker's data under `var/chaos/<time>-<seed>/`, and
exits non-zero when an invariant fails or schemathesis finds a 5xx.
"""


def write_markdown() -> Path:
    run, fuzz = load("faults"), load("fuzz")
    lines = [INTRO]
    if run is not None:
        m = run["machine"]
        errors = any(f.get("error") for f in run["faults"])
        headers = FAULT_HEADERS if errors else FAULT_HEADERS[:-1]
        lines += [
            "## Latest fault run", "",
            f"Seed **{run['seed']}**, run {run['finished_at']} on {m['cores']} cores, {m['memory_gib']} GiB (shared with other "
            f"work); Python {m['python']}, Kafka {m['kafka']}, PostgreSQL {m['postgresql']}. "
            f"{run['ratings']['planned']:,} ratings at {run['rate']:g}/s: posted in {run['posting_seconds']:.0f} s, quiet "
            f"{run['quiet_seconds']:.0f} s after the last answer; the whole run took {run['duration_seconds'] / 60:.1f} min "
            + (f"(`make chaos` with schemathesis: {run['make_chaos_minutes']} min)." if run.get("make_chaos_minutes") else ""), "",
            "### Faults injected", "",
            "A fault is planned after a seeded number of ratings are done; times are seconds from the first rating; "
            "*back after*: the process answers again; *all ready after*: every service's `/readyz` says its database and "
            "Kafka are reachable.", "",
            *_table(headers, [row if errors else row[:-1] for row in fault_rows(run)]), "",
            "### Invariants", "",
            *_table(["invariant", "result", "numbers"], invariant_rows(run)), "",
        ]
        problems = [f"- {v['name']}: {p}" for v in run["invariants"] for p in v["problems"][:10]]
        if problems:
            lines += ["Problems found:", "", *problems, ""]
        k = run["kiosks"]
        lines += [
            "### What the kiosks saw", "",
            f"{k['attempts']:,} requests ({k['retries']:,} of them retries). Outcomes of every attempt "
            "(`not_sent`: connection refused; `no_answer`: timed out or cut off after sending):", "",
            *_table(["outcome", "attempts"], [[o, f"{n:,}"] for o, n in sorted(k["by_outcome"].items())]), "",
            *_table(["fate of a rating", "ratings"], [[f, f"{n:,}"] for f, n in k["fates"].items()]), "",
            "### Push targets", "",
            *_table(["target", "requests", "answers", "results held", "replays of a held version"],
                    [[name, f"{t['requests']:,}", ", ".join(f"{c}: {n:,}" for c, n in t["statuses"].items()),
                      f"{t['results_held']:,}", f"{t['replays']:,}"] for name, t in run["targets"].items()]), "",
        ]
        storage = run.get("storage_bytes")
        acknowledged = run["ratings"]["acknowledged"]
        if storage and acknowledged:
            def rows(sizes: list[tuple[str, int]]) -> list[list[str]]:
                return [[name, f"{size:,}", f"{size / acknowledged:,.0f}"] for name, size in sizes]

            # Keys are schema.table (runs before per-table figures keyed the schema alone).
            schemas: Counter[str] = Counter()
            for name, size in storage.items():
                schemas[name.partition(".")[0]] += size
            tables = Counter({name: size for name, size in storage.items() if "." in name})
            lines += [
                "### Storage after the run", "",
                "Each service's PostgreSQL schema (tables, indexes, TOAST), per rating answered 202 — with its dossier, the "
                "run's events, tickets and pushes; sizing in [operations.md](operations.md).", "",
                *_table(["service", "bytes", "per rating"], rows(sorted(schemas.items()))), "",
            ]
            if tables:
                lines += ["The largest tables:", "", *_table(["table", "bytes", "per rating"], rows(tables.most_common(8))), ""]
        if run.get("unexpected_exits"):
            lines += ["Services that died without being killed: " + "; ".join(run["unexpected_exits"]), ""]
    if fuzz is not None:
        lines += [
            "## Schemathesis", "",
            f"Seed **{fuzz['seed']}**, run {fuzz['finished_at']}, schemathesis {fuzz['schemathesis']}, against the real "
            f"processes on PostgreSQL ({fuzz['where']}), with an admin's token; every operation in both generation "
            "modes (positive and negative) until each service answered at least "
            f"{fuzz['wanted']:,} cases. A finding is a 5xx, or a 4xx that is not `application/problem+json`.", "",
            *_table(FUZZ_HEADERS, fuzz_rows(fuzz)), "",
        ]
        skipped = sorted({s for service in fuzz["services"] for s in service["skipped"]})
        if skipped:
            lines += [f"Not fuzzed: {', '.join(skipped)} (server-sent event streams: the answer never ends).", ""]
        findings = [f"- {s['service']} {f['operation']} ({f['mode']}): {f['problem']}" for s in fuzz["services"] for f in s["findings"]]
        lines += (["Findings:", "", *findings, ""] if findings else ["No findings.", ""])
        after = fuzz.get("after")
        if after:
            lines += [f"After schemathesis: {after}", ""]
    if NOTES.exists():
        lines += [NOTES.read_text(encoding="utf-8").strip(), ""]
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    return REPORT
