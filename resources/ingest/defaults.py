"""Ingest's tuning defaults, in one place: Settings (the INGEST_* variables), IngestTuningResource and the
landing sensor's TickLimits all start from these. Dagster-free."""

from __future__ import annotations

# Batching: one run takes at most this many files / bytes.
MAX_FILES_PER_RUN = 20
MAX_BYTES_PER_RUN = 512 * 1024 * 1024
# Pause between full listing passes of the raw bucket while the event queue is on (the listing only
# reconciles what the queue missed); without a queue the listing runs continuously.
RECONCILE_INTERVAL_SECONDS = 60.0
# The freshness check warns when the newest loaded file is older than this (hours).
FRESHNESS_HOURS = 26.0
# Share of refused records above which the blocking asset check fails.
MAX_REFUSED_SHARE = 0.5
# A file that failed because its loader, run or connection died is retried by itself: at most this many
# attempts in all, the first retry this long after the failure, each next one twice as long.
MAX_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 30.0
# A snapshot that would retire more than this share of its source's entities is held for a person.
MAX_RETIRE_SHARE = 0.2
