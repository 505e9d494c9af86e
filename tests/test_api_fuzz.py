"""Schemathesis against the in-process app: no 500s, responses match the OpenAPI document.

Every operation of the app is exercised (the service runs open: no keys, loopback), with a
fixed seed and a bounded number of examples per operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from api.app import create_app
from api.settings import AppSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(demo_router: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app's schema; the lifespan runs (store, secrets, city) for the whole module."""
    app = create_app(
        AppSettings.of(data_dir=tmp_path_factory.mktemp("api_fuzz"), _env_file=None),
        city_loader=lambda s: (demo_router, None),
    )
    with TestClient(app) as client:
        assert app.state.ready_event.wait(60), app.state.load_error
        assert client.get("/readyz").status_code == 200
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_errors_and_documented_responses(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
