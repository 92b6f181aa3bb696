"""The server against bodies generated from its own /openapi.json (Schemathesis, in process):
valid and invalid requests on every route, and never a 5xx, a non-JSON error or an answer
the document does not describe."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from cais.server.app import create_app
from cais.server.routes import LegacyRoute
from tests.support import serving_models

# Examples per operation and generation mode (valid and invalid data); the count of requests
# made is checked, so a run that generated nothing cannot pass.
EXAMPLES = 30
MINIMUM = {GenerationMode.POSITIVE: 200, GenerationMode.NEGATIVE: 200}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    routes = [
        LegacyRoute(path="/predizer_categoria", input="descricao", output="categoria"),
        LegacyRoute(path="/flor", model="iris", input="medidas", output="especie"),
    ]
    return create_app(serving_models(tmp_path_factory.mktemp("cais-home")), routes=routes)


@pytest.fixture(scope="module")
def api(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_no_generated_request_gets_a_5xx(api, mode):
    sent: list[int] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 18  # every route but the pages, the kept ones included
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def answers_without_a_5xx(case):
            response = case.call()
            sent.append(response.status_code)
            case.validate_response(response, checks=CHECKS)
            if response.status_code >= 400:
                assert isinstance(response.json()["error"], str)

        try:
            answers_without_a_5xx()
        except Unsatisfiable:  # nothing to make invalid (a GET without parameters)
            assert mode is GenerationMode.NEGATIVE
    print(f"{mode}: {len(sent)} generated requests, {sum(s >= 400 for s in sent)} answered 4xx")
    assert len(sent) >= MINIMUM[mode]
    assert all(status < 500 for status in sent)
