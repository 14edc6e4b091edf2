"""Schemathesis against the four services' OpenAPI documents: generated requests, valid and invalid, sent to
the real processes — no answer may be a 5xx, and every 4xx must be application/problem+json.

Each operation is driven in both of schemathesis's generation modes (positive: data the schema allows;
negative: data it forbids) with an admin's token, round after round with fresh seeds until the service has
answered at least the wanted number of cases. A failing case is shrunk by hypothesis to a minimal example
and kept with its curl command; the operation is then left alone for the rest of the run.
Server-sent event streams are not fuzzed: their answer never ends, so a request cannot complete.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

NEVER_ENDING = {("GET", "/v1/rankings/stream"), ("GET", "/v1/public/stream")}
MAX_ROUNDS = 8
NO_ANSWER = 0  # counted under this status: the connection closed without an answer


class Finding(AssertionError):
    """An answer that breaks the rules: a 5xx, or a 4xx that is not problem+json."""


@dataclass
class FuzzResult:
    service: str
    operations: int = 0
    skipped: list[str] = field(default_factory=list)
    cases: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500 or status == NO_ANSWER)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "operations": self.operations, "skipped": self.skipped, "cases": self.cases,
                "by_status": dict(sorted(self.by_status.items())), "server_errors": self.server_errors,
                "findings": self.findings, "seconds": round(self.seconds, 1)}


def _content_type(response: Any) -> str:
    value = response.headers.get("content-type", [""])
    return value[0] if isinstance(value, list) else value


def fuzz_service(name: str, base_url: str, token: str, wanted: int, run_seed: int, say: Callable[[str], None]) -> FuzzResult:
    result = FuzzResult(name)
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = []
    for found in schema.get_all_operations():
        operation = found.ok()
        if (operation.method.upper(), operation.path) in NEVER_ENDING:
            result.skipped.append(f"{operation.method.upper()} {operation.path}")
            continue
        operations.append(operation)
    result.operations = len(operations)
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session()
    failed: set[str] = set()
    pairs = [(operation, mode) for operation in operations for mode in GenerationMode]
    for round_number in range(MAX_ROUNDS):
        if result.cases >= wanted:
            break
        per_pair = max(5, math.ceil((wanted - result.cases) / max(1, len(pairs))) + 5)
        for operation, mode in pairs:
            label = f"{operation.method.upper()} {operation.path}"
            if label in failed:
                continue
            finding = _drive(operation, mode, per_pair, run_seed + round_number, base_url, headers, session, result)
            if finding is not None:
                failed.add(label)
                result.findings.append({"operation": label, "mode": mode.value, **finding})
                say(f"    {name}: {label} ({mode.value}): {finding['problem']}")
    result.seconds = time.monotonic() - started
    return result


def _drive(operation: Any, mode: GenerationMode, examples: int, run_seed: int, base_url: str, headers: dict[str, str],
           session: requests.Session, result: FuzzResult) -> dict[str, Any] | None:
    last: dict[str, Any] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              print_blob=False)
    @seed(run_seed)
    def answers_within_the_rules(case: Any) -> None:
        curl = case.as_curl_command(headers=headers, base_url=base_url)
        result.cases += 1
        try:
            response = case.call(base_url=base_url, headers=headers, session=session, timeout=60)
        except requests.RequestException as exc:  # the service dropped the connection: worse than a 500
            result.by_status[NO_ANSWER] += 1
            last.update(problem=f"no answer: {type(exc).__name__}: {_first_line(exc)}", curl=curl)
            raise Finding(last["problem"]) from exc
        result.by_status[response.status_code] += 1
        problem = None
        # /readyz answers 503 by contract while a dependency is away (a consumer rejoining after a fault): an answer, not an error.
        if response.status_code >= 500 and not (response.status_code == 503 and operation.path == "/readyz"):
            problem = f"{response.status_code} {response.text[:300]}"
        elif 400 <= response.status_code < 500 and not _content_type(response).startswith("application/problem+json"):
            problem = f"{response.status_code} answered as {_content_type(response) or 'no content type'}: {response.text[:200]}"
        if problem is not None:
            last.update(problem=problem, curl=curl)
            raise Finding(problem)

    try:
        answers_within_the_rules()
    except Unsatisfiable:
        return None  # negative mode with nothing to break (no parameters, no body)
    except Finding:
        return dict(last)
    except Exception as exc:  # no answer at all (connection dropped), or several distinct failures at once
        problem = last.get("problem") or f"{type(exc).__name__}: {_first_line(exc)}"
        return {"problem": problem, "curl": last.get("curl", ""), "error": f"{type(exc).__name__}: {_first_line(exc)}"}
    return None


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_first_line(inner) for inner in exc.exceptions[:3])
    return (str(exc).strip().splitlines() or [""])[0][:300]


async def fuzz_all(cluster: Any, run_seed: int, wanted: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Schemathesis against each service of the running cluster; afterwards the system must become quiet with
    every DLQ still empty (a generated request intake accepts must never poison a consumer)."""
    import asyncio

    from chaos.report import machine

    token = cluster.token("admin")
    services = []
    for name, service in cluster.services.items():
        say(f"schemathesis against {name} ({wanted:,} cases at least)")
        result = await asyncio.to_thread(fuzz_service, name, service.url, token, wanted, run_seed, say)
        say(f"  {name}: {result.cases:,} cases over {result.operations} operations in {result.seconds:.0f}s, "
            f"{result.server_errors} answered 5xx, {len(result.findings)} findings")
        services.append(result.as_dict())
    waited, backlog = await cluster.wait_for_quiet(600)
    dead = await cluster.dead_lettered()
    exits = cluster.exited_services()
    after_failed = not backlog.quiet or any(dead.values()) or bool(exits)
    after = (f"quiet {waited:.0f}s later, every DLQ empty, every service alive" if not after_failed else
             f"quiet: {backlog.quiet} ({backlog.describe()}); DLQ records: {sum(dead.values())} "
             f"({', '.join(f'{t}: {n}' for t, n in dead.items() if n) or 'none'}); exited: {exits or 'none'}")
    say(f"after schemathesis: {after}")
    return {"seed": run_seed, "wanted": wanted, "services": services, "after": after, "after_failed": after_failed,
            "where": "the chaos run's cluster", "schemathesis": machine()["schemathesis"]}
