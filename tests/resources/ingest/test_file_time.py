"""The file-time rule: the export's own date, else S3 LastModified, else when the file was registered;
told early only when the document already says whether it has an export date."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from resources.ingest.parsing import DocumentInfo
from resources.ingest.registry import FileRow
from resources.ingest.runner import early_file_time, file_time

EXPORTED, MODIFIED, REGISTERED = (datetime(2026, 3, day, tzinfo=UTC) for day in (1, 2, 3))


def _file(last_modified: datetime | None) -> FileRow:
    fields = {f.name: None for f in dataclasses.fields(FileRow)}
    fields.update(
        file_id=1,
        s3_key="crm-data/a.json",
        etag="e",
        size_bytes=1,
        status="loading",
        attempt=1,
        launches=1,
        discovered_at=REGISTERED,
        last_modified=last_modified,
    )
    return FileRow(**fields)


def test_the_export_date_else_last_modified_else_registration() -> None:
    assert file_time(_file(MODIFIED), EXPORTED) == EXPORTED
    assert file_time(_file(MODIFIED), None) == MODIFIED
    assert file_time(_file(None), None) == REGISTERED


def test_early_the_same_rule_once_the_document_has_told() -> None:
    unknown = DocumentInfo()
    assert early_file_time(_file(MODIFIED), unknown) is None
    told = DocumentInfo(early_known=True, early_export_date=EXPORTED)
    assert early_file_time(_file(MODIFIED), told) == EXPORTED
    told_none = DocumentInfo(early_known=True)
    assert early_file_time(_file(MODIFIED), told_none) == MODIFIED
    assert early_file_time(_file(None), told_none) == REGISTERED
