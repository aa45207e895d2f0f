"""The answer's key (cache address and ETag) changes with the shape of the body served for it."""

from __future__ import annotations

import hashlib
import json

from api.analytics_service import canonical_parameters, prepare


def test_an_etag_kept_from_before_database_info_changed_shape_never_matches_again() -> None:
    # The key as it was computed while database_info's `data` was a list of rows.
    params = canonical_parameters("database_info", {})
    before = json.dumps(
        {"operation": "database_info", "parameters": params, "dataVersion": 7},
        sort_keys=True,
        separators=(",", ":"),
    )
    old_etag = f'"{hashlib.sha256(before.encode()).hexdigest()[:32]}"'
    assert prepare("database_info", {}, 7).etag != old_etag
    assert prepare("database_info", {}, 7).etag == prepare("database_info", {}, 7).etag
