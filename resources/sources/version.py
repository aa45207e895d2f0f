"""The transformation version: which rules produced a canonical row, as a content hash.

A row's version is a hash of everything that decides how a source record becomes canonical: the mapping
rules in code (`MAPPING_VERSION`), the source's validated definition, and any reference data the mapping
reads (`extra_inputs`). Two processes with the same rules and definitions agree on it, and any change to
either gives a new one, so `canonical.entities.metadata.transformation_version` says which rules wrote
each version and a replay can tell what it re-applied.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

# Bumped whenever the mapping rules in code (resources/canonical/) change the canonical output for the
# same input and definition.
MAPPING_VERSION = "1.1.0"
# Hex digits kept of the SHA-256: 64 bits, plenty to tell apart the versions one deployment ever has.
DIGEST_LENGTH = 16


def canonical_json(definition: BaseModel) -> str:
    """The definition as validated (defaults filled in), keys sorted, no whitespace: how its file is
    laid out, and which optional keys it spells out, do not change it."""
    return json.dumps(
        definition.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def transformation_version(definition: BaseModel, *extra_inputs: str | bytes) -> str:
    """The content hash of the mapping rules, `definition` and `extra_inputs` (reference data the mapping
    reads, e.g. a vocabulary file's bytes), in that order."""
    digest = hashlib.sha256()
    for part in (MAPPING_VERSION, canonical_json(definition), *extra_inputs):
        data = part.encode() if isinstance(part, str) else part
        # Length-prefixed: parts never run into each other ("ab" + "c" differs from "a" + "bc").
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:DIGEST_LENGTH]
