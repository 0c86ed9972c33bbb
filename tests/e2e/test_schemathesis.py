"""Schemathesis against /openapi.json: no 5xx and no answer that breaks the description.

Every operation gets generated requests, valid and invalid, with operator credentials, both
with random path parameters and with the names of real apps and add-ons so requests reach past
the lookups. Operations run reads first and deletions last, so the seeded state lasts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api, make_seed, running_api
from tests.conftest import new_pg_database
from tests.pg import PgServer
from tests.servers import running_server

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: The live stream never ends; its behaviour has tests of its own (tests/api, tests/e2e).
SKIPPED = {("GET", "/apps/{app}/config-vars/stream")}
_ORDER = {"GET": 0, "POST": 1, "PATCH": 2, "DELETE": 3}


def _seed_values(api_or_client: Any) -> dict[str, str]:
    """Real names for path parameters: the walkthrough's apps, add-on and attachment."""
    seed = make_seed(api_or_client)
    return {
        "app": "service-2",
        "addon": seed.addon["name"],
        "attachment": seed.attachment["id"],
        "release": "1",
        "user": "~",
    }


def _fuzz(schema: Any, headers: dict[str, str], known: dict[str, str], examples: int) -> list[str]:
    """Run every operation; return one line per operation whose checks failed."""
    operations = [op.ok() for op in schema.get_all_operations()]
    operations.sort(key=lambda op: (_ORDER.get(op.method.upper(), 9), op.path))
    failures: list[str] = []
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        names = {p.name for p in operation.path_parameters}
        fixed = {k: v for k, v in known.items() if k in names}
        strategies = [
            operation.as_strategy(generation_mode=mode)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if fixed:
            strategies += [
                operation.as_strategy(generation_mode=mode, path_parameters=fixed)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            ]
        strategy: st.SearchStrategy[Any] = st.one_of(strategies)

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        # Schemathesis raises a FailureGroup (a BaseExceptionGroup); report it, go on.
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    return failures


@pytest.fixture
def api_for_fuzzing(tmp_path: Path) -> Iterator[Api]:
    """An in-process API with the walkthrough's state."""
    # Fuzzed webhooks are stored, never sent: their made-up hosts must not be looked up.
    with running_api(tmp_path / "data", webhook_concurrency=0) as api:
        yield api


def _report(failures: list[str]) -> str:
    return "\n\n".join(failures)


def test_sqlite_in_process(api_for_fuzzing: Api) -> None:
    """On SQLite, in process: no 5xx, every status, type and body as documented."""
    api = api_for_fuzzing
    known = _seed_values(api)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    failures = _fuzz(schema, api.auth(), known, examples=25)
    shutdown: Callable[[], None] | None = getattr(schemathesis_asgi, "shutdown_lifespans", None)
    if shutdown is not None:
        shutdown()
    assert not failures, _report(failures)


def test_postgres_real_server(tmp_path: Path, pg_server: PgServer) -> None:
    """On PostgreSQL, through a real server: the same, with fewer examples."""
    url = new_pg_database(pg_server)
    master = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    with running_server(tmp_path / "data", database_url=url, master_key=master) as server:
        with server.client() as http:
            known = _seed_values(_HttpSeed(http))
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        failures = _fuzz(schema, {"Authorization": f"Bearer {server.token}"}, known, examples=8)
    assert not failures, _report(failures) + "\n\nserver log:\n" + server.log()[-4000:]


class _HttpSeed:
    """Enough of ``Api`` for ``make_seed`` over a real server's client."""

    def __init__(self, client: Any) -> None:
        self.client = client
