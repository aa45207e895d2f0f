"""The records whose clusters a delta can change, and the stored pairs around them: what an incremental
run clusters instead of every record with every stored pair.

Clusters are built per connected part of the link graph (`resolution.clusters`: the pairs at or above the
upper threshold, and the steward must-links); a part's clusters follow from its own pairs and constraints
alone. The neighbourhood is the closure of the delta over that graph with the stored pairs (golden.pairs,
those touching the delta included: the part a delta record leaves is clustered again too) and the delta's
new pairs. Every part holding a delta record, before or after the delta, lies inside it; any other part
kept its pairs, so its clusters are the last run's. Read from PostgreSQL by rounds of ids (golden.pairs is
indexed by either id), not whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    import pandas as pd

    from resources.resolution.config import ResolutionConfig
    from resources.resolution.model import MatchModel

__all__ = ["PAIRS_AROUND", "Neighbourhood", "pairs_frame"]

# The stored pairs touching some records, each once, comparison weights as JSON text.
PAIRS_AROUND = """SELECT canonical_id_l, canonical_id_r, match_weight, match_probability, comparisons::text
                  FROM golden.pairs WHERE canonical_id_l = ANY(%(ids)s)
                  UNION ALL
                  SELECT canonical_id_l, canonical_id_r, match_weight, match_probability, comparisons::text
                  FROM golden.pairs WHERE canonical_id_r = ANY(%(ids)s) AND NOT canonical_id_l = ANY(%(ids)s)"""


def pairs_frame(rows: Sequence[tuple[Any, ...]], prior: float) -> pd.DataFrame:
    """Stored pair rows (l, r, match_weight, match_probability, comparisons JSON text) as the engine's
    pairs. The evidence weight is the match weight less the model's `prior`, as the engine computed it (the
    same double arithmetic, so the same thresholds decide)."""
    import numpy as np
    import orjson
    import pandas as pd

    from resources.resolution.resolve import PAIR_COLUMNS

    if not rows:
        return pd.DataFrame(columns=list(PAIR_COLUMNS))
    lefts, rights, weights, probabilities, comparisons = zip(*rows, strict=True)
    match_weight = np.asarray(weights, dtype=float)
    frame = pd.DataFrame(
        {
            "canonical_id_l": list(lefts),
            "canonical_id_r": list(rights),
            "evidence_weight": match_weight - prior,
            "match_weight": match_weight,
            "match_probability": np.asarray(probabilities, dtype=float),
        }
    )
    parsed = pd.DataFrame.from_records([orjson.loads(c) if c else {} for c in comparisons])
    for name in parsed.columns:
        frame[f"w_{name}"] = parsed[name].to_numpy(dtype=float, na_value=np.nan)
    return frame


class Neighbourhood:
    """`resolve_delta`'s `around`: given the delta's new pairs and ids, the neighbourhood and the stored
    pairs touching it (kept in `pairs` for the hand-over to the store)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        model: MatchModel,
        config: ResolutionConfig,
        must_links: Iterable[tuple[str, str]],
    ) -> None:
        from resources.resolution.model import prior_weight

        self._conn = conn
        self._prior = prior_weight(model)
        self._upper = config.thresholds.upper
        self._musts = list(must_links)
        self.ids: set[str] = set()
        self.pairs: pd.DataFrame | None = None

    def __call__(self, new_pairs: pd.DataFrame, delta: set[str]) -> tuple[set[str], pd.DataFrame]:
        linked: dict[str, set[str]] = {}

        def link(a: str, b: str) -> None:
            linked.setdefault(a, set()).add(b)
            linked.setdefault(b, set()).add(a)

        strong = new_pairs.loc[new_pairs["evidence_weight"] >= self._upper]
        for a, b in zip(strong["canonical_id_l"], strong["canonical_id_r"], strict=True):
            link(str(a), str(b))
        for a, b in self._musts:
            link(a, b)
        hood: set[str] = set()
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        frontier = set(delta)
        while frontier:
            hood |= frontier
            reached: set[str] = set()
            for row in self._conn.execute(PAIRS_AROUND, {"ids": sorted(frontier)}).fetchall():
                rows[(row[0], row[1])] = row
                if float(row[2]) - self._prior >= self._upper:
                    reached.update((row[0], row[1]))
            for x in frontier:
                reached |= linked.get(x, set())
            frontier = reached - hood
        self._conn.commit()
        self.ids, self.pairs = hood, pairs_frame(list(rows.values()), self._prior)
        return self.ids, self.pairs
