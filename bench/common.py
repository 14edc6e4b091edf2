"""What every benchmark suite shares: a throwaway broker, the machine's description, result files.

A suite is a module `bench/<name>.py` with `async def run(ctx: BenchContext) -> list[dict]`; each
result row names its figure and the ceiling measured in the same run, so ratios survive a noisy
machine. `python -m bench` runs the suites and rewrites docs/benchmarks.md from bench/results/*.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass
class BenchContext:
    """What a suite gets: a running broker, a scratch folder, and an optional PostgreSQL URL factory."""

    bootstrap: str
    tmp: Path
    scale: float = 1.0  # < 1 for a quick smoke run (`--quick`); sizes are multiplied by it
    postgres: Any = None  # deploy.postgres.runner.ThrowawayPostgres when `--postgres` is given

    def size(self, full: int, minimum: int = 100) -> int:
        return max(minimum, int(full * self.scale))


def machine() -> dict[str, object]:
    from deploy.kafka.runner import KAFKA_VERSION

    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cores": os.cpu_count(), "memory_gib": round(memory_kb / 1024 / 1024, 1), "python": platform.python_version(),
        "kafka": KAFKA_VERSION, "aiokafka": version("aiokafka"), "sqlalchemy": version("sqlalchemy"),
        "fastapi": version("fastapi"),
    }


def ratio_row(
    scenario: str, unit: str, measured: float, ceiling_name: str, ceiling: float, *, target: str = "", **extra: Any
) -> dict[str, Any]:
    """A throughput figure beside its same-run ceiling (both in `unit`, higher is better)."""
    row = {
        "scenario": scenario, "unit": unit, "value": round(measured, 1), "ceiling": ceiling_name,
        "ceiling_value": round(ceiling, 1), "ratio_to_ceiling": round(measured / ceiling, 3) if ceiling else None,
        "target": target, **extra,
    }
    print(f"  {scenario}: {measured:,.0f} {unit} (ceiling {ceiling_name}: {ceiling:,.0f}, ratio {row['ratio_to_ceiling']})", flush=True)
    return row


def write_suite(name: str, rows: list[dict[str, Any]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"suite": name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "results": rows}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def write_markdown() -> Path:
    """docs/benchmarks.md from every suite's latest results."""
    lines = [
        "# Benchmarks",
        "",
        "Figures from `make bench`. Each stands beside a ceiling measured in the same run on the same machine,",
        "so the ratio stays meaningful on a noisy machine. Raw data: `bench/results/*.json`; one suite is",
        "`python -m bench <suite>`.",
        "",
    ]
    summary = ROOT / "bench" / "SUMMARY.md"  # the targets at a glance, written by hand from the latest run
    if summary.exists():
        lines += [summary.read_text(encoding="utf-8").strip(), ""]
    for path in sorted(RESULTS.glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        m = report["machine"]
        lines += [
            f"## {report['suite']}",
            "",
            f"Run {report['date']} on {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, Kafka {m['kafka']}, "
            f"aiokafka {m['aiokafka']}, SQLAlchemy {m['sqlalchemy']}.",
            "",
            "| scenario | value | unit | ceiling | ceiling value | ratio | target | notes |",
            "|---|---:|---|---|---:|---:|---|---|",
        ]
        for r in report["results"]:
            notes = "; ".join(f"{k} {_cell(v)}" for k, v in r.items() if k not in {
                "scenario", "unit", "value", "ceiling", "ceiling_value", "ratio_to_ceiling", "target"})
            lines.append(
                f"| {r['scenario']} | {_cell(r['value'])} | {r['unit']} | {r.get('ceiling', '')} | {_cell(r.get('ceiling_value'))} "
                f"| {_cell(r.get('ratio_to_ceiling'))} | {r.get('target', '')} | {notes} |"
            )
        notes = ROOT / "bench" / "notes" / f"{report['suite']}.md"
        if notes.exists():  # what the figures mean, profiles, before/after: written by hand
            lines += ["", notes.read_text(encoding="utf-8").strip()]
        lines.append("")
    narrative = ROOT / "bench" / "NOTES.md"  # cross-suite notes
    if narrative.exists():
        lines += ["## Notes", "", narrative.read_text(encoding="utf-8").strip(), ""]
    out = ROOT / "docs" / "benchmarks.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def peak_rss_mb(pid: int | str = "self") -> float:
    """The peak resident set size (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def cpu_seconds(pid: int | str = "self") -> float:
    """User and system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class UvicornProcess:
    """An ASGI app (`module:app`) served by uvicorn on a free port, as the suites measure it from outside."""

    def __init__(self, app: str, env: dict[str, str], log: Path) -> None:
        from deploy.kafka.runner import free_port
        from deploy.process import die_with_parent

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port),
                 "--no-access-log", "--log-level", "warning"],
                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
            )

    def wait_answering(self, path: str, timeout: float) -> None:
        """Until GET `path` answers 200 (`/readyz`: its database and Kafka are reachable)."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.app} did not answer {path} within {timeout:.0f}s")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid)

    def children(self) -> list[int]:
        """The pids of the server's live child processes (intake's outbox relay)."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        return pids

    def children_cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.children())

    def children_peak_rss_mb(self) -> float:
        return sum(peak_rss_mb(pid) for pid in self.children())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
