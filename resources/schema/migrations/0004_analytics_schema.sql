-- Scheduled analytics (assets/analytics_tables.py): the recurring answers, materialized one table each
-- in schema `analytics`. The writer builds and owns them (and grants the read-only role SELECT on each,
-- so the REST API can serve them); `analytics.materializations` says what each holds: the operation,
-- its parameters and the ingest data version it was computed at.
CREATE SCHEMA IF NOT EXISTS analytics;
GRANT USAGE, CREATE ON SCHEMA analytics TO pipeline_writer;
GRANT USAGE ON SCHEMA analytics TO pipeline_reader;

CREATE TABLE analytics.materializations (
    name            text PRIMARY KEY,
    operation       text NOT NULL,
    parameters      jsonb NOT NULL,
    data_version    bigint NOT NULL,
    row_count       integer NOT NULL,
    columns         jsonb NOT NULL,
    run_id          text,
    materialized_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON analytics.materializations TO pipeline_writer;
GRANT SELECT ON analytics.materializations TO pipeline_reader;
