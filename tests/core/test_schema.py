from pathlib import Path

import pytest
import yaml
from django.core.management import call_command


@pytest.mark.django_db
def test_openapi_schema_validates_without_warnings(tmp_path: Path):
    """`spectacular --validate --fail-on-warn` checks the document against the OpenAPI 3 meta-schema."""
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.")
    assert "/api/v1/auth/otp/request" in document["paths"]


@pytest.mark.django_db
def test_schema_and_docs_are_served(api):
    assert api.get("/api/schema/").status_code == 200
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
