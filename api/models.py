"""Request and response models: they make the OpenAPI document exact."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from resources.sources.catalogue import get_sources


class AnalyticsRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "operation": "customer_analysis",
                    "parameters": {"metric": "revenue", "group_by": "industry"},
                },
                {
                    "operation": "revenue_analysis",
                    "parameters": {"group_by": "industry", "top_n": 10, "entity_scope": "golden"},
                },
            ]
        }
    )
    operation: str = Field(..., min_length=1, max_length=100, description="A catalogue operation name")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="The operation's parameters (GET /analytics/operations lists each operation's, with "
        "their JSON Schema; e.g. entity_scope 'source' or 'golden' for the segment operations)",
    )


class JobRequest(AnalyticsRequest):
    timeout_seconds: float | None = Field(default=None, gt=0, le=300, description="Statement timeout")
    max_rows: int = Field(default=100_000, ge=1, le=1_000_000, description="Row cap")


class Download(BaseModel):
    json_url: str = Field(..., alias="json", description="Presigned GET URL of the JSON result")
    csv: str = Field(..., description="Presigned GET URL of the CSV result")
    expiresIn: int = Field(..., description="Seconds the URLs stay valid")
    model_config = ConfigDict(populate_by_name=True)


class Metadata(BaseModel):
    resultCount: int
    timestamp: str
    cacheHit: bool
    executionTimeMs: float
    columns: list[str]
    dataVersion: int
    truncated: bool
    parameters: dict[str, Any]
    storage: Literal["inline", "s3"]
    download: Download | None = None
    notes: list[str] | None = Field(
        None,
        description="What to know to read the rows right, e.g. why there are none (data_integrity_analysis "
        "before any entity resolution); present only when there is something to say",
    )


class TableStructureColumn(BaseModel):
    column_name: str
    data_type: str


class DatabaseInfoData(BaseModel):
    """database_info's `data`: the old system's object (its dashboards read `data.tables`)."""

    model_config = ConfigDict(title="DatabaseInfoData")
    tables: list[dict[str, Any]] = Field(
        ...,
        description="One object per canonical table: table_name (as the old answer), kind, partitions, "
        "row_count, row_count_exact, total_bytes, column_count, columns",
    )
    sample_table_structure: list[TableStructureColumn] = Field(
        ..., description="The first table's columns and their types (the old answer's sample)"
    )


Rows = list[dict[str, Any]]
DATA_DESCRIPTION = (
    "Per operation: database_info answers an object, `{tables, sample_table_structure}` (the old system's "
    "shape); every other operation answers its rows as objects. null when the result is in the results bucket "
    "(see largeResult, downloadUrl)."
)


def _data_schema(schema: dict[str, Any]) -> None:
    """`data`'s branches exclude each other (a list, an object, null): say so (oneOf), and name each."""
    branches = schema.pop("anyOf", None) or []

    def titled(branch: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in branch:
            return {"allOf": [branch], "title": "database_info"}
        if branch.get("type") == "array":
            return {**branch, "title": "Rows (every other operation)"}
        return {**branch, "title": "Large result (in the results bucket)"}

    schema["oneOf"] = [titled(b) for b in branches]


class AnalyticsResponse(BaseModel):
    success: Literal[True] = True
    operation: str
    operationId: str = Field(..., description="The old API's field: <operation>_<epoch ms>")
    executionTime: str = Field(
        ..., description="The old API's field, e.g. '123ms' (metadata.executionTimeMs: ours)"
    )
    data: Rows | DatabaseInfoData | None = Field(
        ...,
        description=DATA_DESCRIPTION + " metadata.download has presigned links to it.",
        json_schema_extra=_data_schema,
    )
    metadata: Metadata
    largeResult: bool | None = Field(
        None,
        description="The old API's large-result fields: true when data is null "
        "and the rows are in the results bucket",
    )
    s3Url: str | None = Field(None, description="s3://bucket/key of the JSON result (large results)")
    downloadUrl: str | None = Field(None, description="GET it (relative to the API's base URL) for the rows")
    recordCount: int | None = None
    message: str | None = None
    tables: list[dict[str, Any]] | None = Field(
        None,
        deprecated=True,
        description="database_info: the table names (read data.tables, the old system's place for them)",
    )
    sample_table_structure: list[TableStructureColumn] | None = Field(
        None,
        deprecated=True,
        description="database_info: the first table's columns and types (read data.sample_table_structure)",
    )


class DownloadResponse(BaseModel):
    success: Literal[True] = True
    data: list[dict[str, Any]]
    metadata: dict[str, Any] = Field(..., description="operation, generatedAt, recordCount, columns, source")


class OperationInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(..., description="JSON Schema of the parameters")


class OperationsResponse(BaseModel):
    success: Literal[True] = True
    operations: list[OperationInfo]
    count: int


class CheckResult(BaseModel):
    status: Literal["ok", "down"]
    latencyMs: float
    required: bool
    detail: str | None = None


class HealthResponse(BaseModel):
    success: bool
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    version: str
    checks: dict[str, CheckResult]
    database: Literal["connected", "disconnected"] = Field(..., description="The old API's field")
    details: dict[str, Any] = Field(..., description="The old API's field: service, version")


class Problem(BaseModel):
    """RFC 9457 problem details, with the seed's error fields."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    instance: str
    requestId: str | None = None
    errors: list[dict[str, Any]] | None = None
    success: Literal[False] = False
    error: dict[str, Any]
    suggestions: list[str]


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries: these status codes answer with a Problem as application/problem+json."""
    return {c: {"model": Problem, "content": {"application/problem+json": {}}} for c in codes}


class Job(BaseModel):
    model_config = ConfigDict(extra="allow")
    jobId: str
    status: str
    jobType: str | None = None
    operation: str | None = None
    parameters: dict[str, Any] | None = None
    createdAt: str | None = None
    updatedAt: str | None = None
    queuedAt: str | None = None
    startedAt: str | None = None
    cancelRequestedAt: str | None = None
    finishedAt: str | None = None
    rowCount: int | None = None
    error: str | None = None
    dagsterRunUrl: str | None = None
    links: dict[str, str] = Field(default_factory=dict)


class JobResultMetadata(BaseModel):
    resultCount: int = Field(..., description="Rows of the answer")
    timestamp: str | None = Field(..., description="When the job finished")
    cacheHit: Literal[False] = False
    columns: list[str] | None = None
    truncated: bool
    storage: Literal["inline", "s3"]


class JobResponse(BaseModel):
    success: Literal[True] = True
    job: Job
    # The old API's fields, beside ours: a poller written for it reads jobId and status at the top level.
    jobId: str
    status: str = Field(
        ...,
        description="The old vocabulary: submitted, running, completed, failed, canceled "
        "(job.status: ours — queued, running, canceling, succeeded, failed, "
        "canceled)",
    )
    checkStatusUrl: str
    submittedAt: str | None = None
    resultUrl: str | None = Field(None, description="Once completed: where the result is")
    message: str | None = None
    # The answer, as the old workflow merged it into a completed job's record: inline up to 1,000 rows that
    # fit in the job item (operation … data, metadata), else the large-result fields (… recordCount).
    operation: str | None = Field(None, description="Once completed: the operation")
    operationId: str | None = Field(None, description="Once completed: <operation>_<start, epoch ms>")
    executionTime: str | None = Field(None, description="Once completed: the query's time, e.g. '123ms'")
    data: Rows | DatabaseInfoData | None = Field(
        None,
        description="Once completed with at most 1,000 rows that fit in the job item. " + DATA_DESCRIPTION,
        json_schema_extra=_data_schema,
    )
    metadata: JobResultMetadata | None = Field(None, description="Once completed: about the answer")
    largeResult: bool | None = Field(
        None,
        description="Completed with a result in the results bucket (over 1,000 "
        "rows, or too large for the job item): no data",
    )
    s3Url: str | None = Field(None, description="s3://bucket/key of the JSON result (large results)")
    downloadUrl: str | None = Field(None, description="GET it (relative to the API's base URL) for the rows")
    recordCount: int | None = Field(None, description="Rows of a large result")


class FieldShare(BaseModel):
    field: str
    share: float = Field(description="new: share of the file's records carrying it; missing: without it")


class TypeChange(BaseModel):
    field: str
    before: list[str] = Field(description="JSON types the source sent for it before (null aside)")
    now: list[str] = Field(description="JSON types in this file")


class RequiredFieldGone(BaseModel):
    field: Literal["id", "name"]
    paths: list[str] = Field(description="Where the source's definition looks for it")
    share: float = Field(description="Share of the file's records carrying none of them")
    usual: str | None = Field(description="The path the source's earlier files carried it under")
    suggestion: str | None = Field(description="A new field carried by about as many records")
    finding: str


class FileDrift(BaseModel):
    records: int
    marker: str = Field(description="Short form: +new -missing ~type changes, !field for a required one gone")
    summary: str
    counts: dict[str, int] = Field(description="Findings of each kind (new, missing, types, required)")
    new: list[FieldShare]
    missing: list[FieldShare]
    types: list[TypeChange]
    required: list[RequiredFieldGone] = Field(
        description="A required field gone from (nearly) every record: the file failed with this finding"
    )


class IngestFile(BaseModel):
    fileId: int
    key: str
    etag: str
    sizeBytes: int
    source: str | None
    status: str
    reason: str | None
    attempt: int
    batchId: str | None
    runId: str | None
    counts: dict[str, int | None] = Field(
        description="received, inserted, updated, unchanged, rejected, duplicates (a later occurrence in the "
        "file won), superseded (older in source order than what the store holds: not applied), retired "
        "(entities a snapshot no longer holds, deleted)"
    )
    seconds: float | None
    discoveredAt: str
    finishedAt: str | None
    sourceFileAt: str | None = Field(
        default=None, description="The file's place in its source's history (export date, else LastModified)"
    )
    failureKind: Literal["data", "infrastructure"] | None = Field(
        default=None,
        description="Of a failed file: `data` (its content or the object; waits for a reprocess) "
        "or `infrastructure` (its loader, run or connection died; retried by itself)",
    )
    retries: int = Field(default=0, description="Automatic retries of this series of attempts")
    attemptCause: Literal["reprocess", "retry", "release", "replay"] | None = Field(
        default=None, description="Why the current attempt started (null: the file arrived)"
    )
    drift: FileDrift | None = Field(
        default=None,
        description="Its records' shape against its source's earlier loaded files (null: no change, or "
        "the source's first file)",
    )


class FileAttempt(BaseModel):
    attempt: int
    cause: Literal["reprocess", "retry", "release", "replay"] | None
    runId: str | None
    startedAt: str | None
    finishedAt: str
    outcome: Literal["loaded", "failed", "held"]
    failureKind: Literal["data", "infrastructure"] | None
    reason: str | None


class IngestFilesResponse(BaseModel):
    success: Literal[True] = True
    data: list[IngestFile]
    metadata: dict[str, Any]


class RejectedRecord(BaseModel):
    recordIndex: int
    sourceId: str | None
    reasons: Any
    record: Any


class IngestFileResponse(BaseModel):
    success: Literal[True] = True
    file: IngestFile
    rejectedSample: list[RejectedRecord]
    attempts: list[FileAttempt] = Field(
        default_factory=list, description="Every ended attempt of this file version, oldest first"
    )


class _DefinedSource:
    """A source system's name: one the source definitions give (resources/sources/), read when a request
    is validated and when the OpenAPI document is built (its enum), not when this module is imported."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_defined_source, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "enum": list(get_sources().names)}


def _defined_source(value: str) -> str:
    names = get_sources().names
    if value not in names:
        expected = " or ".join([", ".join(repr(n) for n in names[:-1]), repr(names[-1])])
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return value


SourceName = Annotated[str, _DefinedSource()]


class UploadRequest(BaseModel):
    source: SourceName
    filename: str = Field(..., min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._\-/ ]+$")


class UploadResponse(BaseModel):
    success: Literal[True] = True
    key: str
    bucket: str
    url: str
    method: Literal["PUT"] = "PUT"
    expiresIn: int
