"""schemathesis against the running API's ``/openapi.json`` with an operator token: a bounded
number of generated requests per operation; no 5xx, every response matches the schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from redpss.instance import Instance
from tests.integration.test_rest import start_rest_instance

MakeInstance = Callable[..., Instance]
EXAMPLES = 12


def test_openapi_conformance(make_instance: MakeInstance, tmp_path: Path) -> None:
    api = start_rest_instance(make_instance)
    ca_file = tmp_path / "ca.pem"
    api.ca.cert_pem.write_to_path(str(ca_file))
    with api.client(api.operator) as c:
        doc = c.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    session.verify = str(ca_file)
    headers = {"Authorization": f"Bearer {api.operator}"}
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    tested = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(
                base_url=api.base, session=session, headers=headers, timeout=30, verify=str(ca_file)
            )
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            case.validate_response(response, checks=checks)

        check()
        tested.append(operation.label)
    session.close()
    assert "GET /api/status" in tested and "POST /api/jobs/{name}/start" in tested
    if len(tested) < 20:
        pytest.fail(f"only {len(tested)} operations in the schema: {tested}")
