-- Golden entities: the real-world companies behind the canonical records (README "Golden entities").
-- Runs as the database owner (local: postgres; AWS: the RDS master user).
--
-- Entity resolution clusters canonical records; each cluster is one golden entity with a stable id
-- ('G' || a sequence number, never reused) and one record built from its members by survivorship.
-- resources/golden/store.py is the one writer (a resolution run, in one transaction); the REST app
-- reads here and records steward decisions.
--
-- No foreign keys on the bulk tables (members, pairs, history): a full run writes a million members in
-- seconds through COPY, and a per-row RI check would cost more than the rest of the write; the one
-- writer keeps them consistent inside its transaction.

CREATE SCHEMA IF NOT EXISTS golden;

-- The numbers behind golden ids. A sequence never hands a number out twice (rolled back or not), so an
-- id is never given again, even after it was retired.
CREATE SEQUENCE golden.golden_id_seq AS bigint START 1;

-- Trained matching models. version is the content hash of parameters: the same model trained twice
-- is one row. At most one is active (the one the next run scores with).
CREATE TABLE golden.models (
    model_version text PRIMARY KEY,
    parameters    jsonb NOT NULL,
    trained_at    timestamptz NOT NULL DEFAULT now(),
    active        boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX models_one_active ON golden.models ((true)) WHERE active;

CREATE TABLE golden.runs (
    run_id          text PRIMARY KEY,
    mode            text NOT NULL CHECK (mode IN ('full', 'incremental')),
    -- The model that scored the run's pairs; not a reference: a model row may be pruned, a run's record stays.
    model_version   text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    entities        integer NOT NULL DEFAULT 0,
    clusters        integer NOT NULL DEFAULT 0,
    pairs           integer NOT NULL DEFAULT 0,
    review_pairs    integer NOT NULL DEFAULT 0,
    ids_created     integer NOT NULL DEFAULT 0,
    ids_retired     integer NOT NULL DEFAULT 0,
    members_moved   integer NOT NULL DEFAULT 0,
    records_written integer NOT NULL DEFAULT 0
);

-- One row per golden id ever given: retired ids stay (status 'retired', successor where most of their
-- members went), so an old id still answers and is never given again.
CREATE TABLE golden.entities (
    golden_id      text PRIMARY KEY,
    seq            bigint NOT NULL UNIQUE,  -- creation order: the older id wins a tie
    status         text NOT NULL CHECK (status IN ('active', 'retired')),
    successor_id   text,
    member_count   integer NOT NULL DEFAULT 0,
    -- The golden record (survivorship), each field with the member it came from in lineage
    -- ({"name": "crm_CUST-1001", ...}); configured extra attributes in attributes.
    name           text,
    industry       text,
    revenue        numeric,
    employees      bigint,
    country        text,
    email          text,
    website        text,
    phone          text,
    address        text,
    attributes     jsonb NOT NULL DEFAULT '{}'::jsonb,
    lineage        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The survivorship rules the record was built with: a change of rules rebuilds every record once.
    rules_version  text,
    created_run_id text,
    updated_run_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    retired_at     timestamptz,
    CHECK (golden_id = 'G' || seq)
);

-- Membership: a canonical record belongs to exactly one golden entity (the primary key).
-- fingerprint: the member's content when its golden record was last built (md5 of its attributes hash,
-- status and source position), so a run rebuilds only records whose members changed.
CREATE TABLE golden.members (
    canonical_id text PRIMARY KEY,
    golden_id    text NOT NULL,
    fingerprint  text NOT NULL,
    since_run_id text,
    since        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX members_golden_idx ON golden.members (golden_id);

-- What happened to golden ids, run by run. kind:
--   new      canonical records entered golden_id for the first time (golden_id may be new too)
--   merge    members of other_golden_id moved into golden_id, which existed before
--   split    members of other_golden_id moved out into golden_id, created for them
--   retired  golden_id has no members left; other_golden_id got most of them
--   removed  canonical records that no longer exist left golden_id
-- reason (jsonb) says why: the pair and score that linked or failed to link the members, the rule, or
-- the steward decision.
CREATE TABLE golden.history (
    history_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          text,
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL CHECK (kind IN ('new', 'merge', 'split', 'retired', 'removed')),
    golden_id       text NOT NULL,
    other_golden_id text,
    members         text[] NOT NULL DEFAULT '{}',
    reason          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX history_golden_idx ON golden.history (golden_id, history_id);
CREATE INDEX history_other_idx ON golden.history (other_golden_id, history_id) WHERE other_golden_id IS NOT NULL;

-- The scored pairs of the latest resolution (a full run replaces them; an incremental run those of its
-- records). Stored once per pair, canonical_id_l < canonical_id_r (by code point); read by either id.
CREATE TABLE golden.pairs (
    canonical_id_l    text NOT NULL,
    canonical_id_r    text NOT NULL,
    match_weight      double precision NOT NULL,
    match_probability double precision NOT NULL CHECK (match_probability BETWEEN 0 AND 1),
    band              text NOT NULL CHECK (band IN ('auto', 'review')),
    comparisons       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- per-comparison match weights
    run_id            text,
    PRIMARY KEY (canonical_id_l, canonical_id_r),
    CHECK (canonical_id_l < canonical_id_r COLLATE "C")
);
CREATE INDEX pairs_r_idx ON golden.pairs (canonical_id_r);
-- The review queue's order.
CREATE INDEX pairs_review_idx ON golden.pairs (match_weight DESC, canonical_id_l, canonical_id_r)
    WHERE band = 'review';

-- Steward decisions: they always win over the model (the engine takes them as must-link and
-- cannot-link constraints, and the store enforces them on what it is given). The latest decision on a
-- pair is the one in force.
--   same      canonical_id_l and canonical_id_r are the same company
--   not_same  they are not
--   move_out  canonical_id_l leaves golden_id: not the same as any of apart_from (golden_id's other
--             members when the decision was taken)
CREATE TABLE golden.decisions (
    decision_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('same', 'not_same', 'move_out')),
    canonical_id_l text NOT NULL,
    canonical_id_r text,
    golden_id      text,
    apart_from     text[] NOT NULL DEFAULT '{}',
    decided_by     text NOT NULL,
    decided_at     timestamptz NOT NULL DEFAULT now(),
    note           text,
    CHECK ((kind = 'move_out') = (canonical_id_r IS NULL)),
    CHECK (canonical_id_r IS NULL OR canonical_id_l < canonical_id_r COLLATE "C")
);
CREATE INDEX decisions_pair_idx ON golden.decisions (canonical_id_l, canonical_id_r, decision_id);
CREATE INDEX decisions_r_idx ON golden.decisions (canonical_id_r) WHERE canonical_id_r IS NOT NULL;

-- The review queue: review-band pairs no steward has decided yet. A view, so a decision leaves the
-- queue the moment it is committed.
CREATE VIEW golden.review_queue AS
SELECT p.canonical_id_l, p.canonical_id_r, p.match_weight, p.match_probability, p.comparisons, p.run_id
FROM golden.pairs p
WHERE p.band = 'review'
  AND NOT EXISTS (
      SELECT 1 FROM golden.decisions d
      WHERE d.canonical_id_l = p.canonical_id_l AND d.canonical_id_r = p.canonical_id_r
  );

-- Grants. The writer runs resolutions and records decisions; the reader reads.
GRANT USAGE ON SCHEMA golden TO pipeline_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA golden TO pipeline_writer;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE golden.golden_id_seq TO pipeline_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA golden GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pipeline_writer;

GRANT USAGE ON SCHEMA golden TO pipeline_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA golden TO pipeline_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA golden GRANT SELECT ON TABLES TO pipeline_reader;
