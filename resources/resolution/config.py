"""What the matcher compares, how it blocks, where it draws its lines: configuration, not code.

Defaults in code fit this platform's company data; `load_config(path)` reads a JSON file that overrides
any of them (unknown keys are refused, so a misspelt setting is an error, not a silent default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "BlockingSettings",
    "ConfigError",
    "NameComparison",
    "NumberComparison",
    "ResolutionConfig",
    "SourceSettings",
    "TextComparison",
    "Thresholds",
    "TrainingSettings",
    "load_config",
]


ComparisonName = Literal[
    "name",
    "legal_form",
    "country",
    "industry",
    "revenue",
    "employees",
    "email_domain",
    "website",
    "phone",
    "address",
]

# The matcher's columns, so a blocking rule naming something else is caught when the config is read.
MATCH_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "source_system",
    *get_args(ComparisonName),
    "name_sorted",
    "name_head",
    "name_tail",
    "em_name_prefix",
    "em_phone",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NameComparison(_Strict):
    """The company name, the one strong field: levels from exact to a few edits, word order aside."""

    enabled: bool = True
    levenshtein_thresholds: tuple[int, ...] = (1, 2)
    # A Jaro-Winkler level catches longer names with a dropped word; off by default because on company
    # names it also pulls different companies sharing a prefix ("acme foods" / "acme tools") into the match.
    jaro_winkler_thresholds: tuple[float, ...] = ()
    word_order_level: bool = True  # the same words in another order ("global tech corp" / "tech corp global")
    term_frequency_adjustments: bool = True  # a common exact name ("acme") is weaker evidence than a rare one


class TextComparison(_Strict):
    """An exact-match field (legal form, country, industry, e-mail domain, website, phone)."""

    enabled: bool = True
    term_frequency_adjustments: bool = False
    jaro_winkler_thresholds: tuple[float, ...] = ()


class NumberComparison(_Strict):
    """A number that drifts between exports (revenue, headcount): levels by relative difference."""

    enabled: bool = True
    # Relative difference |a-b| / max(a, b) at or below each threshold is a level of its own.
    relative_difference_thresholds: tuple[float, ...] = (0.02, 0.15, 0.4)


class Thresholds(_Strict):
    """Evidence weights: a pair's match weight without the prior (the sum of its comparisons' log2 Bayes
    factors), so a threshold does not move with the estimated prior.

    The prior does fall with the store's size, though: the more companies, the more of them hold a name
    one letter from another's, while each company keeps its few twins. On the generator, precision at
    these defaults went from 0.9998 at 19k records to 0.997 at 95k: a much larger store may want a higher
    `upper`."""

    # At or above: linked automatically. Above the name's largest weight (`max_abs_name_weight`), so a
    # name alone, however close, never links: a second field must agree.
    upper: float = 15.0
    lower: float = 8.0  # from here to upper: the review band, never linked by the model alone
    # A source that does not duplicate its own records gets two of its ids in one cluster only at or
    # above this weight.
    same_source_link: float = 30.0
    # A merge of two clusters needs more than this share of their cross pairs scored at or above `lower`
    # (a record joins a pair only when it reaches both): one strong edge between two groups of similar
    # names does not chain them together.
    min_cross_link_share: float = 0.5

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.lower <= self.upper <= self.same_source_link:
            raise ValueError("thresholds must satisfy lower <= upper <= same_source_link")
        if not 0.0 <= self.min_cross_link_share <= 1.0:
            raise ValueError("min_cross_link_share must be within 0..1")
        return self


class BlockingSettings(_Strict):
    """Which pairs are compared: records sharing a key (see `blocking`). Each key can be switched off."""

    name_within_one_edit: bool = True
    name_words: bool = True
    name_all_but_one_word: bool = True
    domain: bool = True
    phone: bool = True
    # A key shared by more records than this is dropped: it would say little about which company a
    # record is, and its pairs grow with the square of its size.
    max_block_size: int = Field(default=20, ge=2)
    # A word in at most this many records is rare: a name's words but one are a key only when what is
    # left holds a rare word.
    rare_word_max_records: int = Field(default=20, ge=1)
    # Further rules, each a set of the matcher's columns that must be equal, uncapped (say ("name_head",)
    # on a small store): their pairs are compared too.
    rules: tuple[tuple[str, ...], ...] = ()

    @model_validator(mode="after")
    def _known_columns(self) -> BlockingSettings:
        unknown = sorted({c for rule in self.rules for c in rule} - set(MATCH_COLUMNS))
        if unknown:
            raise ValueError(f"blocking rules name unknown columns: {', '.join(unknown)}")
        if any(not rule for rule in self.rules):
            raise ValueError("a blocking rule needs at least one column")
        return self


class SourceSettings(_Strict):
    # True for a source that may hold one company under two of its own ids (a CRM where reps create
    # accounts twice); False for one whose ids are its companies (an ERP's accounts).
    deduplicates_itself: bool = False


class TrainingSettings(_Strict):
    seed: int = 42
    u_max_pairs: float = 1e6
    em_max_pairs: float = 5e5
    # EM sessions, each blocked on separately computed columns (a session switches off the comparisons
    # whose columns its blocking rule names): the first sees pairs sharing a name prefix, the second pairs
    # sharing a phone number, whose names vary as twins' names do. Not the e-mail domain: a parent and
    # its subsidiaries share one, and EM would learn that a name disagreement is common among matches.
    em_blocking_columns: tuple[tuple[str, ...], ...] = (("em_name_prefix",), ("em_phone",))
    u_min_count_per_level: int | None = 100
    # No field but the name may veto a match, and none may make one alone: a trained weight beyond this
    # magnitude is pulled back to it. EM learns a near-veto from any field whose twins never disagree in the
    # training data (an industry, a website), and one stale value would then split a company.
    max_abs_weight: float = 10.0
    # The name's cap, below `Thresholds.upper`: an exact or one-letter-off name is strong evidence but not
    # enough alone, since two companies a letter apart ("gosos" / "gosis") are common in a large store.
    max_abs_name_weight: float = 14.0
    # Deterministic rules that catch most true matches, with their assumed recall: sets the prior.
    prior_rules: tuple[str, ...] = ("l.name = r.name",)
    prior_recall: float = 0.8
    # The trained model must penalise a name disagreement at least this much (match weight of the name's
    # else level), or it is refused as degenerate.
    max_name_else_weight: float = -3.0
    min_name_exact_weight: float = 3.0


class ResolutionConfig(_Strict):
    name: NameComparison = NameComparison()
    legal_form: TextComparison = TextComparison()
    country: TextComparison = TextComparison()
    industry: TextComparison = TextComparison()
    revenue: NumberComparison = NumberComparison()
    employees: NumberComparison = NumberComparison()
    email_domain: TextComparison = TextComparison(term_frequency_adjustments=True)
    website: TextComparison = TextComparison()
    phone: TextComparison = TextComparison()
    address: TextComparison = TextComparison(jaro_winkler_thresholds=(0.92,))
    blocking: BlockingSettings = BlockingSettings()
    thresholds: Thresholds = Thresholds()
    training: TrainingSettings = TrainingSettings()
    sources: dict[str, SourceSettings] = Field(
        default_factory=lambda: {
            "crm": SourceSettings(deduplicates_itself=True),
            "erp": SourceSettings(deduplicates_itself=False),
            "legacy": SourceSettings(deduplicates_itself=True),
        }
    )

    def deduplicates_itself(self, source_system: str) -> bool:
        """Unknown sources are taken to hold duplicates: the constraint never applies to them."""
        settings = self.sources.get(source_system)
        return True if settings is None else settings.deduplicates_itself


class ConfigError(ValueError):
    """A configuration file that cannot be used; says which file and why."""


def load_config(path: str | Path | None) -> ResolutionConfig:
    """The defaults, overridden by the JSON file at `path` when one is given."""
    if path is None or str(path) == "":
        return ResolutionConfig()
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p}: {e}") from e
    try:
        return ResolutionConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{p}: {e}") from e
