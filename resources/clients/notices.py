"""SNS notices when jobs finish or fail. Dagster-free.

One JSON message per notice, a short subject, and message attributes (`status`, `jobType`,
`operation`) so subscribers can filter (e.g. only failures) with an SNS filter policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JobNotice:
    job_id: str
    job_type: str  # analytics | ingest
    status: str  # succeeded | failed | canceled
    operation: str | None = None
    row_count: int | None = None
    result_location: str | None = None  # s3://… or "inline"
    error: str | None = None
    dagster_run_url: str | None = None

    @property
    def subject(self) -> str:
        what = self.operation or self.job_type
        # SNS subjects: ASCII, at most 100 characters.
        return f"[canonical-pipeline] {self.job_type} job {self.status}: {what}"[:100]

    def message(self) -> str:
        body = {
            "jobId": self.job_id,
            "jobType": self.job_type,
            "status": self.status,
            "operation": self.operation,
            "rowCount": self.row_count,
            "resultLocation": self.result_location,
            "error": self.error,
            "dagsterRunUrl": self.dagster_run_url,
        }
        return json.dumps(body, separators=(",", ":"))

    def attributes(self) -> dict[str, dict[str, str]]:
        attrs = {"status": self.status, "jobType": self.job_type}
        if self.operation:
            attrs["operation"] = self.operation
        return {k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def publish(sns: Any, topic_arn: str, notice: JobNotice) -> str:
    """Publish; return the SNS message id."""
    resp = sns.publish(
        TopicArn=topic_arn,
        Subject=notice.subject,
        Message=notice.message(),
        MessageAttributes=notice.attributes(),
    )
    return str(resp["MessageId"])
