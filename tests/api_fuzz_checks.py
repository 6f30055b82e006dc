"""Schemathesis extension hooks for tests/test_api_fuzz.py (loaded by `st` through SCHEMATHESIS_HOOKS).

One check replaces Schemathesis's positive_data_acceptance. That one fails any 4xx answer to a request
the OpenAPI calls valid, which would also fail the rules no JSON Schema states: "give account or
phone", "the restoration must come after the start", an unknown department. This one fails what is
the description's fault: a schema-valid request refused as malformed JSON (400 invalid_json) or for one
of its fields by the shared validation (422 naming a field), i.e. the OpenAPI and the pydantic model
that checks the request disagree about a field.
"""
from __future__ import annotations

import json

import schemathesis
from schemathesis import Case, CheckContext, Response

FIELD_CODES = ("invalid_input", "invalid_query")


@schemathesis.check
def fields_valid_by_the_description_are_accepted(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    try:
        error = json.loads(response.content or b"{}").get("error") or {}
    except ValueError:
        return None
    fields = [d.get("field") for d in error.get("details") or [] if isinstance(d, dict) and d.get("field")]
    if error.get("code") == "invalid_json" or (error.get("code") in FIELD_CODES and fields):
        raise AssertionError(f"a request valid by the OpenAPI was refused ({response.status_code} "
                             f"{error.get('code')}: {error.get('details') or error.get('message')})")
    return None
