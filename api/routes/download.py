"""GET /download/{key}: a stored result by its key, as the old API's large-result downloads were served.

The keys are the ones this platform writes: a synchronous answer parked in the results bucket
(`sync/<hash>/result.json|csv`) or an analytics job's result (`results/<run id>/result.json|csv`); any
other key is not found, whatever the bucket holds. A JSON result small enough for an API response comes
back in the old envelope (`success`, `data`, `metadata`); a CSV, or a result too large to return
through the API (Lambda responses stop at 6 MB), is a 303 to a presigned URL of the same object.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.analytics_service import presign_get
from api.deps import ReadScope, State
from api.models import DownloadResponse, problem_responses
from api.problems import ApiProblem

router = APIRouter(tags=["analytics"])
RESULT_KEY = re.compile(r"(sync/[0-9a-f]{64}|results/[A-Za-z0-9_-]{1,100})/result\.(json|csv)")


def _not_found(key: str) -> ApiProblem:
    return ApiProblem(
        404,
        "result_not_found",
        f"no stored result {key!r}: unknown, or expired",
        title="Result not found or expired",
        error_type="NotFound",
        suggestions=[
            "Run the operation again: GET or POST /analytics",
            "A job's result: GET /analytics/jobs/{id}/result",
        ],
    )


@router.get(
    "/download/{key:path}",
    response_model=DownloadResponse,
    summary="A stored result (large answers)",
    responses={
        **problem_responses(401, 403, 404, 422, 503),
        303: {"description": "CSV, or a result too large for an API response: a presigned URL"},
    },
)
def download(
    key: Annotated[
        str, Path(max_length=200, description="The key in downloadUrl, e.g. sync/<hash>/result.json")
    ],
    _: ReadScope,
    state: State,
) -> Response:
    m = RESULT_KEY.fullmatch(key)
    if m is None:
        raise _not_found(key)
    s3 = state.client("s3")
    try:
        head = s3.head_object(Bucket=state.settings.results_bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise _not_found(key) from None
        raise
    if m.group(2) == "csv" or int(head.get("ContentLength", 0)) > state.api.download_inline_max_bytes:
        filename = f"{key.split('/')[1]}.{m.group(2)}"
        return RedirectResponse(presign_get(state, key, filename=filename), status_code=303)
    body: dict[str, Any] = json.loads(
        s3.get_object(Bucket=state.settings.results_bucket, Key=key)["Body"].read()
    )
    meta = head.get("Metadata") or {}
    rows = body.get("rows", [])
    return JSONResponse(
        {
            "success": True,
            "data": rows,
            "metadata": {
                "operation": meta.get("operation") or None,
                "generatedAt": head["LastModified"].isoformat(),
                "recordCount": len(rows),
                "columns": body.get("columns", []),
                "source": "s3",
            },
        }
    )
