"""Request and response models of the golden-entity endpoints (api/routes/golden.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# PostgreSQL text holds no NUL character: refused here rather than by the database.
CANONICAL_ID_PATTERN = r"^[^\s\x00]+$"
CanonicalIdText = Field(min_length=1, max_length=300, pattern=CANONICAL_ID_PATTERN)


class GoldenRecord(BaseModel):
    goldenId: str
    status: Literal["active", "retired"]
    successorId: str | None = Field(description="For a retired id: the golden id most of its members went to")
    memberCount: int
    fields: dict[str, Any] = Field(
        description="name, industry, revenue, employees, country, email, website, phone, address, and any "
        "attribute the survivorship rules keep; null where no member has a value"
    )
    lineage: dict[str, str] = Field(
        description="Per field with a value: the canonical id of the member it came from"
    )
    createdAt: datetime
    updatedAt: datetime
    retiredAt: datetime | None


class EntityGoldenData(BaseModel):
    canonicalId: str
    goldenId: str | None = Field(description="null while the record has not been resolved yet")
    golden: GoldenRecord | None


class EntityGoldenResponse(BaseModel):
    success: Literal[True] = True
    data: EntityGoldenData


class GoldenMember(BaseModel):
    canonicalId: str
    source: str | None
    name: str | None
    status: str | None
    sinceRunId: str | None = Field(description="The resolution run that put it in this golden entity")
    since: datetime


class MatchEvidence(BaseModel):
    canonicalIdL: str
    canonicalIdR: str
    matchWeight: float
    matchProbability: float
    band: Literal["auto", "review"]
    comparisons: dict[str, float] = Field(description="Each comparison's match weight (the model's evidence)")
    runId: str | None


class HistoryEntry(BaseModel):
    historyId: int
    runId: str | None
    at: datetime
    kind: Literal["new", "merge", "split", "retired", "removed"]
    goldenId: str
    otherGoldenId: str | None
    members: list[str]
    reason: dict[str, Any] = Field(
        description="Why: the rule, the pair and its score, or the steward decision"
    )


class GoldenEntityData(BaseModel):
    record: GoldenRecord
    members: list[GoldenMember]
    evidence: list[MatchEvidence] = Field(description="The scored pairs between its members, strongest first")
    history: list[HistoryEntry] = Field(
        description="Merges, splits and retirements, newest first (up to 500)"
    )


class GoldenEntityResponse(BaseModel):
    success: Literal[True] = True
    data: GoldenEntityData


class ReviewPair(BaseModel):
    canonicalIdL: str
    canonicalIdR: str
    matchWeight: float
    matchProbability: float
    comparisons: dict[str, float]
    runId: str | None
    goldenIdL: str | None
    goldenIdR: str | None
    nameL: str | None
    nameR: str | None


class ReviewQueueResponse(BaseModel):
    success: Literal[True] = True
    data: list[ReviewPair]
    metadata: dict[str, Any] = Field(description="resultCount, timestamp, nextCursor (null on the last page)")


class DecisionRequest(BaseModel):
    """same / not_same: two records are (not) the same company. move_out: the record leaves its golden
    entity (it is not the same as any of the other members). Decisions win over the model from the next
    resolution on; the pair leaves the review queue at once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"decision": "same", "canonical_id": "crm_CUST-1001", "other_canonical_id": "erp_ERP-2001"},
                {"decision": "move_out", "canonical_id": "legacy_L-17", "note": "a different branch"},
            ]
        },
    )
    decision: Literal["same", "not_same", "move_out"]
    canonical_id: str = CanonicalIdText
    other_canonical_id: str | None = Field(
        default=None, min_length=1, max_length=300, pattern=CANONICAL_ID_PATTERN
    )
    note: str | None = Field(default=None, max_length=2000, pattern=r"^[^\x00]*$")

    @model_validator(mode="after")
    def _pair_or_member(self) -> DecisionRequest:
        if self.decision == "move_out" and self.other_canonical_id is not None:
            raise ValueError("move_out names one record: leave other_canonical_id out")
        if self.decision != "move_out" and self.other_canonical_id is None:
            raise ValueError(f"{self.decision} names a pair: give other_canonical_id")
        return self


class DecisionData(BaseModel):
    decisionId: int
    decision: Literal["same", "not_same", "move_out"]
    canonicalIdL: str
    canonicalIdR: str | None
    goldenId: str | None = Field(description="move_out: the golden entity the record leaves")
    apartFrom: list[str] = Field(description="move_out: the members it is not the same as")
    decidedBy: str = Field(description="The API key's name")
    decidedAt: datetime
    note: str | None


class DecisionResponse(BaseModel):
    success: Literal[True] = True
    data: DecisionData
    message: str
