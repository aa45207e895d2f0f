"""JSON response bodies encoded by orjson: the /analytics envelope is re-encoded on every answer, cached
ones included, and the json module was a tenth of a cached answer's CPU (py-spy under the API bench).

The bytes are those of Starlette's JSONResponse (compact, UTF-8 unescaped) except in what JSON leaves open
(`1e16` for `1e+16`); anything orjson refuses (an integer past 64 bits) goes through the json module.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse


def json_bytes(content: Any) -> bytes:
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json_bytes(content)
