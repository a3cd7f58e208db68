"""Property-based run of the API against its own OpenAPI schema (schemathesis): no server errors.

Every operation gets generated requests, schema-conforming ones and schema-violating ones
(odd strings, huge numbers, wrong types); each response must be a non-5xx status the schema
documents, whose body matches it. Examples per operation and mode are capped so the run
takes well under a minute. (schemathesis' own pytest loader does not run on pytest 9, so
the strategies are driven with hypothesis directly.)
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="the fuzz run needs schemathesis (in the dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(shared_library, tmp_path_factory):  # noqa: ANN001, ANN201
    from retrieval.serve import ServeConfig, create_app

    # The ASGI client names itself "testserver"; DNS-rebinding refusals are tested in test_security.
    app = create_app(
        shared_library, ServeConfig(cache_dir=tmp_path_factory.mktemp("fuzz-thumbs"), allowed_hosts=("testserver",))
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema) -> list:  # noqa: ANN001
    return [result.ok() for result in schema.get_all_operations()]


def test_schema_documents_every_api_route(api_schema) -> None:  # noqa: ANN001
    labels = {f"{op.method.upper()} {op.path}" for op in _operations(api_schema)}
    assert {
        "GET /api/search",
        "POST /api/search",
        "POST /api/search/texts",
        "POST /api/uploads",
        "POST /api/search/image",
        "GET /api/items/{item_id}/thumbnail",
        "GET /api/items/{item_id}/file",
        "GET /api/info",
    } <= labels


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_responses_match_the_schema(api_schema, mode: GenerationMode) -> None:  # noqa: ANN001
    ran = []
    for operation in _operations(api_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:  # noqa: ANN001
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Unsatisfiable:  # nothing can violate the schema of an operation without inputs
            assert mode == GenerationMode.NEGATIVE and not (
                operation.path_parameters or operation.query or operation.body
            ), operation.label
            continue
        ran.append(operation.label)
    assert len(ran) >= 8, ran
