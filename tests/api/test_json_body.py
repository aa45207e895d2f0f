"""api.json_body: orjson bodies that read the same as Starlette's JSONResponse."""

from __future__ import annotations

import json

from fastapi.responses import JSONResponse

from api.json_body import FastJSONResponse, json_bytes

ENVELOPE = {
    "success": True,
    "operation": "customer_analysis",
    "executionTime": "82ms",
    "data": [
        {"industry": "Técnica ☃", "customers": 12, "revenue": 1234567.89, "share": 0.125, "note": None},
        {"industry": 'a"quote\\', "customers": 0, "revenue": -0.5, "share": 1.0, "note": "x\ny"},
    ],
    "metadata": {
        "resultCount": 2,
        "cacheHit": True,
        "columns": ["industry", "customers"],
        "truncated": False,
    },
}


def test_an_analytics_envelope_encodes_to_the_same_bytes_as_starlettes_json_response() -> None:
    assert FastJSONResponse(ENVELOPE).body == JSONResponse(ENVELOPE).body


def test_an_integer_orjson_cannot_hold_is_encoded_by_the_json_module() -> None:
    big = {"n": 2**70, "m": -(2**65)}
    assert json.loads(json_bytes(big)) == big
