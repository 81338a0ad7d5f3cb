"""Schema fuzzing of every REST endpoint from our own OpenAPI document (schemathesis).

No generated request may cause a 500, and every response must match what the
document promises (status codes, content types, bodies).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import (
    MISSING_REQUIRED_HEADER_EXPECTED_STATUSES,
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
)

from tests.factories import sign_in

# tus 1.0 (resumable uploads, docs/media.md) answers a missing or unsupported
# Tus-Resumable header with 412 Precondition Failed, as the protocol requires.
# Unknown query parameters are ignored by design (cache-busters such as `_=`), so negative
# cases do not add them; unknown body fields are still generated and must be refused.
CONFIG = SchemathesisConfig.from_dict({"checks": {
    "negative_data_rejection": {"expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "412"]},
    "missing_required_header": {"expected-statuses": [*MISSING_REQUIRED_HEADER_EXPECTED_STATUSES, "412"]},
}, "generation": {"allow-extra-parameters": False}})
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=CONFIG)
# tus PATCH bodies are raw bytes, like application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@pytest.fixture
def fuzz_headers(db, settings):
    settings.OTP_TEST_NUMBERS = ["+1555"]
    # The WSGI handler would close the test's connection at each request (as Django's
    # own test client prevents), losing the test transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    person = sign_in(display_name="Fuzz")
    yield {"Authorization": f"Bearer {person.token}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Business rules reject some schema-valid requests (a wrong OTP code, an unknown id),
# so "positive data acceptance" does not apply; schema-violating requests must still
# be refused (negative_data_rejection), and nothing may be a 5xx.
EXCLUDED_CHECKS = [checks.positive_data_acceptance]


@schema.parametrize()
@hypothesis_settings(
    max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@pytest.mark.django_db
def test_every_endpoint_survives_generated_input_and_honours_its_schema(case, fuzz_headers):
    case.call_and_validate(headers=fuzz_headers, excluded_checks=EXCLUDED_CHECKS)
