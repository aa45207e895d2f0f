"""Streaming parse of raw files: `{"records": [...]}`, a JSON array, or NDJSON, each optionally gzip.

Memory stays flat whatever the file size: ijson (yajl C backend) yields one record at a time from
the S3 body, and gzip is decompressed as a stream. Numbers that are not integers arrive as Decimal,
so revenue keeps its exact digits.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import ijson

from resources.canonical.times import parse_time

_CHUNK = 256 * 1024
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")


class ParseError(ValueError):
    """The file is not valid JSON of a supported shape: nothing of it may land."""

    def __init__(self, message: str, *, byte_offset: int | None = None, record_index: int | None = None):
        where = []
        if record_index is not None:
            where.append(f"after record {record_index}")
        if byte_offset is not None:
            where.append(f"near byte {byte_offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.byte_offset = byte_offset
        self.record_index = record_index


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """An NDJSON line that is not JSON: refused on its own, the other lines still load."""

    line_number: int
    text: str
    error: str


@dataclass(slots=True)
class DocumentInfo:
    """What a file says about itself beside its records; filled once its records have been read."""

    # The export's own `metadata.exportDate` (the real CRM export has one): when the source system
    # wrote the file, a better place in its history than when the file reached the bucket.
    export_date: datetime | None = None
    # Set before the first record when export_date can be told early: from the document's shape (arrays
    # and NDJSON have none), its head, or its tail read apart (`read_tail`). The loader merges chunks
    # with it while the rest is read, and checks it against export_date at the end.
    early_known: bool = False
    early_export_date: datetime | None = None
    # Reads the stored object's tail: set when only the tail can tell early, called by early() (an
    # extra request, made only for a file large enough to be merged in chunks).
    pending_tail: Callable[[], bytes] | None = None

    def early(self) -> tuple[bool, datetime | None]:
        """(known, export date) before the last record: see early_known."""
        if self.pending_tail is not None:
            read_tail, self.pending_tail = self.pending_tail, None
            self.early_known = True
            self.early_export_date = _as_time(_tail_value(read_tail()))
        return self.early_known, self.early_export_date


class _Reader(io.RawIOBase):
    """Adapts any object with read(n) (botocore's StreamingBody, GzipFile) to a raw stream, counting
    the bytes handed on, so errors can say roughly where they happened. Keeps the first chunk and the
    last two (references, no copies) so a document's small top-level fields can be read afterwards
    without a second pass over the records."""

    def __init__(self, body: IO[bytes]):
        self._body = body
        self.offset = 0
        self.head = b""
        self._last: tuple[bytes, bytes] = (b"", b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._body.read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            if not self.offset:
                self.head = data
            self._last = (self._last[1], data)
        self.offset += n
        return n

    @property
    def tail(self) -> bytes:
        return self._last[0] + self._last[1]


def _open(body: IO[bytes]) -> tuple[IO[bytes], _Reader, bool]:
    """Gzip by magic bytes, not by name: a `.json` that is really gzip still parses."""
    buffered = io.BufferedReader(_Reader(body), buffer_size=_CHUNK)
    head = buffered.peek(2)[:2]
    gzipped = head == b"\x1f\x8b"
    inner: IO[bytes] = gzip.GzipFile(fileobj=buffered, mode="rb") if gzipped else buffered  # type: ignore[assignment]  # GzipFile is a binary IO in all but name
    counted = _Reader(inner)
    return io.BufferedReader(counted, buffer_size=_CHUNK), counted, gzipped


def _first_significant_byte(stream: IO[bytes]) -> bytes:
    while True:
        chunk: bytes = stream.peek(64)  # type: ignore[attr-defined]  # a BufferedReader, typed as IO
        if not chunk:
            return b""
        stripped = chunk.lstrip(b" \t\r\n")
        if stripped:
            if chunk[:3] == b"\xef\xbb\xbf":  # UTF-8 BOM
                stream.read(3)
                continue
            return stripped[:1]
        stream.read(len(chunk))


TAIL_BYTES = 2 * _CHUNK  # as much of the end as the stream keeps (_Reader.tail)


def iter_records(
    key: str,
    open_body: Callable[[], IO[bytes]],
    info: DocumentInfo | None = None,
    read_tail: Callable[[], bytes] | None = None,
) -> Iterator[Any]:
    """Yield each record of the file (any JSON value; mapping refuses non-objects).

    NDJSON lines that are not JSON are yielded as MalformedLine. Raises ParseError when the file as a
    whole is malformed or of an unsupported shape. `open_body` may be called a second time, only to
    explain a JSON object without records. `info` is filled when the last record has been yielded, and
    its early fields before the first; `read_tail` (the last TAIL_BYTES of the stored object) lets an
    uncompressed object document tell its date early when it states it after the records.
    """
    stream, counter, gzipped = _open(open_body())
    if key.lower().endswith(NDJSON_SUFFIXES):
        if info is not None:
            info.early_known = True
        yield from _iter_ndjson(stream)
        return
    first = _first_significant_byte(stream)
    if first == b"":
        return  # an empty document holds no records
    if first == b"[":
        prefix = "item"
        if info is not None:
            info.early_known = True
    elif first == b"{":
        prefix = "records.item"
        if info is not None:
            _early_export_date(info, counter.head, None if gzipped else read_tail)
    else:
        raise ParseError(
            "expected a JSON object with a 'records' array, a JSON array, or NDJSON; "
            f"the file starts with {first.decode('latin-1')!r}",
            byte_offset=0,
        )
    n = 0
    try:
        for record in ijson.items(stream, prefix, use_float=False):
            n += 1
            yield record
    except ijson.JSONError as exc:
        raise ParseError(
            f"malformed JSON: {_clean(exc)}", byte_offset=counter.offset, record_index=n
        ) from exc
    if n == 0 and prefix == "records.item":
        _explain_empty_object(open_body)
    if info is not None and prefix == "records.item":
        info.export_date = _export_date(counter)


_EXPORT_DATE = "metadata.exportDate"
_METADATA_KEY = b'"metadata"'
_MAX_TAIL_TRIES = 64


def _early_export_date(info: DocumentInfo, head: bytes, read_tail: Callable[[], bytes] | None) -> None:
    value = _top_level_value(head, stop_at_records=True)
    if value is not None:
        info.early_known = True
        info.early_export_date = _as_time(value)
    else:  # without read_tail, only the end of the stream will tell
        info.pending_tail = read_tail


def _export_date(counter: _Reader) -> datetime | None:
    """`metadata.exportDate` of a parsed `{"records": [...], ...}` document, from the bytes kept by the
    reader: the head (metadata written before the records) or the tail (after them, as the CRM export
    does)."""
    value = _top_level_value(counter.head, stop_at_records=True)
    if value is None:
        value = _tail_value(counter.tail)
    return _as_time(value)


def _tail_value(tail: bytes) -> Any:
    """A top-level key in the tail is found by trying each `"metadata"` from the end: `{` + the rest of
    the document parses as one object only where the key sits at the top level (inside a record or
    another object, the closing brackets of the enclosing values are left over)."""
    value = None
    pos = len(tail)
    for _ in range(_MAX_TAIL_TRIES):
        if value is not None:
            break
        pos = tail.rfind(_METADATA_KEY, 0, pos)
        if pos < 0:
            break
        if tail[pos - 1 : pos] != b"\\":
            value = _top_level_value(b"{" + tail[pos:], stop_at_records=False)
    return value


def _top_level_value(doc: bytes, *, stop_at_records: bool) -> Any:
    found = None
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(doc), use_float=False):
            if prefix == _EXPORT_DATE and event in ("string", "number"):
                found = value
            elif stop_at_records and prefix == "records" and event == "start_array":
                return found
    except ijson.JSONError:
        return found if stop_at_records else None
    return found


def _as_time(value: Any) -> datetime | None:
    return parse_time(value.strip()) if isinstance(value, str) else None


def _explain_empty_object(open_body: Callable[[], IO[bytes]]) -> None:
    """Zero records from an object: fine for `"records": []`, an error for anything else."""
    stream, _, _ = _open(open_body())
    for prefix, event, _value in ijson.parse(stream, use_float=False):
        if prefix == "records":  # the first event of the top-level records value
            if event == "start_array":
                return
            raise ParseError(f"'records' must be an array, found {event.replace('start_', '')}")
    raise ParseError("the JSON object has no 'records' array")


def _iter_ndjson(stream: IO[bytes]) -> Iterator[Any]:
    for line_number, raw in enumerate(stream, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            yield json.loads(line, parse_float=Decimal)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            text = line.decode("utf-8", errors="replace")
            yield MalformedLine(line_number, text, f"line {line_number}: {_clean(exc)}")


def _clean(exc: Exception) -> str:
    """yajl's messages span lines (text, then a caret line): keep them readable on one line."""
    return " ".join(str(exc).split())[:500]
