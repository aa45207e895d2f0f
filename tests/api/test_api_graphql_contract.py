"""Our GraphQL documents are valid against the schema of the Dagster version we run (no server needed)."""

from __future__ import annotations

import pytest

from api.dagster_client import LAUNCH_RUN, TERMINATE_RUN


@pytest.mark.parametrize("document", [LAUNCH_RUN, TERMINATE_RUN], ids=["launchRun", "terminateRun"])
def test_documents_validate_against_dagsters_schema(document):
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    errors = validate(schema, parse(document))
    assert errors == []
