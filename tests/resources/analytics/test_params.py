"""Unit tests (no database): the catalogue's contract, parameter models and the custom query guard."""

from __future__ import annotations

from typing import Any, Self

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.analytics import (
    CATALOGUE,
    InvalidParameters,
    QueryRejected,
    UnknownOperation,
    describe_catalogue,
    get_operation,
    validate_parameters,
)
from resources.analytics.guard import (
    DENIED_FUNCTIONS,
    DENIED_PREFIXES,
    check_query,
    denial_reason,
    wrap_with_cap,
)
from resources.analytics.legacy import METRIC_ALIASES
from resources.analytics.params import (
    ENTITY_SCOPES,
    GROUP_BY_SQL,
    GROUP_BYS,
    MAX_ANALYSIS_MONTHS,
    MAX_DEPTH,
    MAX_LIMIT,
    MAX_QUERY_PARAMS,
    MAX_TOP_N,
    METRIC_SQL,
    METRICS,
    MIN_SIMILARITY,
    TIMEFRAMES,
)
from resources.analytics.result import Table

# Names and parameters are a contract (README, REST API).
CONTRACT = {
    "database_info": set(),
    "simple_demo": {"include_deleted"},
    "customer_analysis": {"metric", "group_by", "min_group_size", "include_deleted", "entity_scope"},
    "revenue_analysis": {"metric", "group_by", "top_n", "include_deleted", "entity_scope"},
    "count_analysis": {"group_by", "include_deleted", "entity_scope"},
    "multi_dimensional_analytics": {"timeframe"},
    "relationship_network": {"root_entity_id", "max_depth", "max_roots"},
    "time_series_patterns": {"analysis_period", "metric_type"},
    "data_integrity_analysis": {"min_similarity", "limit"},
    "custom_complex_query": {"query", "params"},
}

fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_catalogue_is_the_contract():
    assert {name: set(op.params_model.model_fields) for name, op in CATALOGUE.items()} == CONTRACT
    described = describe_catalogue()
    assert [d["name"] for d in described] == list(CONTRACT)
    assert all(d["description"] and d["parameters"]["type"] == "object" for d in described)


def test_unknown_operation_names_the_known_ones():
    with pytest.raises(UnknownOperation) as info:
        get_operation("drop_tables")
    assert info.value.known == list(CONTRACT) and "customer_analysis" in str(info.value)
    with pytest.raises(UnknownOperation):
        get_operation(None)


@pytest.mark.parametrize("name", list(CONTRACT))
def test_unknown_parameters_are_refused(name):
    required = {
        "relationship_network": {"root_entity_id": "crm_1"},
        "custom_complex_query": {"query": "SELECT 1"},
    }
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(name, {**required.get(name, {}), "query_timeout": 1})
    [err] = info.value.errors
    assert err.field == "query_timeout" and "unknown parameter" in err.message


@pytest.mark.parametrize("name", [n for n in CONTRACT if n != "custom_complex_query"])
def test_defaults_fill_in(name):
    params = validate_parameters(name, None)
    assert set(params.model_dump()) == CONTRACT[name]


def test_parameters_must_be_an_object():
    with pytest.raises(InvalidParameters) as info:
        validate_parameters("count_analysis", ["industry"])  # type: ignore[arg-type]
    assert info.value.errors[0].field == "parameters"


# --------------------------------------------------------------------------------------------------
# Whitelisted identifiers

WHITELISTS = [
    ("customer_analysis", "metric", METRICS),
    ("customer_analysis", "group_by", GROUP_BYS),
    ("revenue_analysis", "metric", METRICS),
    ("revenue_analysis", "group_by", GROUP_BYS),
    ("count_analysis", "group_by", GROUP_BYS),
    ("customer_analysis", "entity_scope", ENTITY_SCOPES),
    ("revenue_analysis", "entity_scope", ENTITY_SCOPES),
    ("count_analysis", "entity_scope", ENTITY_SCOPES),
]


@pytest.mark.parametrize(
    ("op", "field", "allowed"), [*WHITELISTS, ("multi_dimensional_analytics", "timeframe", TIMEFRAMES)]
)
def test_every_whitelisted_identifier_is_accepted(op, field, allowed):
    for value in allowed:
        assert getattr(validate_parameters(op, {field: value}), field) == value


@pytest.mark.parametrize(("op", "field", "allowed"), WHITELISTS)
@fast
@given(
    value=st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            ["Industry", "industry ", "name", "revenue; --", "e.name", "1", "INDUSTRY", "entity_id"]
        ),
    )
)
def test_anything_else_is_refused_with_the_valid_values(op, field, allowed, value):
    if value.strip() in allowed:  # surrounding whitespace is stripped
        return
    if field == "metric" and value.strip() in METRIC_ALIASES:  # the old API's names are accepted on purpose
        return
    with pytest.raises(InvalidParameters) as info:
        validate_parameters(op, {field: value})
    [err] = info.value.errors
    assert err.field == field and err.valid_values == list(allowed)
    assert all(v in str(info.value) for v in allowed)


def test_identifiers_map_to_fixed_sql_fragments():
    assert set(GROUP_BY_SQL) == set(GROUP_BYS) and set(METRIC_SQL) == set(METRICS)
    for fragment in [*GROUP_BY_SQL.values(), *METRIC_SQL.values()]:
        assert "%" not in fragment and "{" not in fragment and ";" not in fragment


# --------------------------------------------------------------------------------------------------
# Bounded numbers (and strings from a query string)

BOUNDS = [
    ("customer_analysis", "min_group_size", 1, 1_000_000),
    ("revenue_analysis", "top_n", 1, MAX_TOP_N),
    ("relationship_network", "max_depth", 1, MAX_DEPTH),
    ("data_integrity_analysis", "limit", 1, MAX_LIMIT),
]
BASE = {"relationship_network": {"root_entity_id": "crm_CUST-1"}}


@pytest.mark.parametrize(("op", "field", "low", "high"), BOUNDS)
@fast
@given(n=st.integers(min_value=-(10**9), max_value=10**9), as_text=st.booleans())
def test_integers_are_bounded_and_coerced_from_text(op, field, low, high, n, as_text):
    raw = {**BASE.get(op, {}), field: str(n) if as_text else n}
    if low <= n <= high:
        assert getattr(validate_parameters(op, raw), field) == n
    else:
        with pytest.raises(InvalidParameters) as info:
            validate_parameters(op, raw)
        assert info.value.errors[0].field == field


@pytest.mark.parametrize("value", ["five", "1.5", 1.5, "", None, [3], True, False])
def test_integers_refuse_non_integers(value):
    with pytest.raises(InvalidParameters):
        validate_parameters("revenue_analysis", {"top_n": value})


@fast
@given(x=st.floats(allow_nan=True, allow_infinity=True), as_text=st.booleans())
def test_min_similarity_is_bounded(x, as_text):
    raw = {"min_similarity": repr(x) if as_text else x}
    if MIN_SIMILARITY <= x <= 1.0:
        assert validate_parameters("data_integrity_analysis", raw).min_similarity == pytest.approx(x)
    else:
        with pytest.raises(InvalidParameters):
            validate_parameters("data_integrity_analysis", raw)


@pytest.mark.parametrize(
    ("text", "normalised", "months"),
    [
        ("12 months", "12 months", 12),
        ("1 month", "1 month", 1),
        ("6 MONTHS", "6 months", 6),
        ("2 quarters", "6 months", 6),
        ("1 quarter", "3 months", 3),
        ("1 year", "12 months", 12),
        ("10 years", "120 months", 120),
        (" all ", "all", None),
        ("3months", "3 months", 3),
    ],
)
def test_analysis_period_accepted_forms(text, normalised, months):
    p = validate_parameters("time_series_patterns", {"analysis_period": text})
    assert p.analysis_period == normalised and p.months == months


@pytest.mark.parametrize(
    "text",
    [
        "0 months",
        "121 months",
        "11 years",
        "1 week",
        "30 days",
        "month",
        "-1 month",
        "1 month; DROP TABLE x",
        "1 month'",
        "P1M",
        "1.5 months",
        "",
    ],
)
def test_analysis_period_refused_forms(text):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters("time_series_patterns", {"analysis_period": text})
    assert info.value.errors[0].field == "analysis_period"


@fast
@given(
    n=st.integers(min_value=0, max_value=2000), unit=st.sampled_from(["month", "months", "quarter", "year"])
)
def test_analysis_period_is_bounded(n, unit):
    months = n * {"month": 1, "months": 1, "quarter": 3, "year": 12}[unit]
    raw = {"analysis_period": f"{n} {unit}"}
    if 1 <= months <= MAX_ANALYSIS_MONTHS:
        assert validate_parameters("time_series_patterns", raw).months == months
    else:
        with pytest.raises(InvalidParameters):
            validate_parameters("time_series_patterns", raw)


@pytest.mark.parametrize("metric_type", ["monthly_revenue", "active_users", "a.b:c-d e"])
def test_metric_type_is_a_bounded_value(metric_type):
    assert (
        validate_parameters("time_series_patterns", {"metric_type": metric_type}).metric_type == metric_type
    )


@pytest.mark.parametrize("metric_type", ["", "x" * 101, "revenue'; --", "a\nb"])
def test_metric_type_refused(metric_type):
    with pytest.raises(InvalidParameters):
        validate_parameters("time_series_patterns", {"metric_type": metric_type})


@pytest.mark.parametrize(
    "root",
    [
        "crm_CUST-1001",
        "erp_ERP-2001",
        "legacy_30001",
        "crm_x'); DROP TABLE y; --",
        "0190b3f2-7c1e-7a41-8d2b-2f7f2b6c9a10",
    ],
)
def test_root_entity_id_accepts_canonical_ids_and_uuids(root):
    p = validate_parameters("relationship_network", {"root_entity_id": root})
    assert p.root_entity_id == root and (p.root_uuid is not None) == ("-" in root and "_" not in root)


@pytest.mark.parametrize("root", ["", "CUST-1001", "sap_1", "crm_", "x" * 300, 1001])
def test_root_entity_id_refused(root):
    with pytest.raises(InvalidParameters):
        validate_parameters("relationship_network", {"root_entity_id": root})


# --------------------------------------------------------------------------------------------------
# Values are bound, never pasted: capture what each operation sends to the database


class _Cursor:
    def __init__(self, log: list) -> None:
        self.log = log
        self.description = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: Any, params: Any = None) -> _Cursor:
        text = query if isinstance(query, str) else query.as_string(None)
        self.log.append((text, params))
        return self

    def fetchall(self) -> list:
        return []

    def fetchone(self) -> tuple:
        return (True,)  # there are metric points (and, for a window, its start)


class _Conn:
    def __init__(self) -> None:
        self.log: list = []

    def cursor(self) -> _Cursor:
        return _Cursor(self.log)


HOSTILE = "x'); DROP TABLE canonical.entities; --"


@pytest.mark.parametrize(
    ("op", "params", "value"),
    [
        ("relationship_network", {"root_entity_id": f"crm_{HOSTILE}"}, f"crm_{HOSTILE}"),
        ("time_series_patterns", {"metric_type": "a-b c"}, "a-b c"),
        ("customer_analysis", {"min_group_size": 987654}, 987654),
        ("revenue_analysis", {"top_n": 77}, 77),
        ("data_integrity_analysis", {"limit": 999}, 999),
        ("multi_dimensional_analytics", {"timeframe": "11 months"}, 11),  # the old API's window
    ],
)
def test_caller_values_travel_as_bound_parameters(monkeypatch, op, params, value):
    import resources.analytics.result as result_module

    operation = get_operation(op)
    conn = _Conn()
    for module in ("segments", "trends", "network", "integrity", "info"):
        monkeypatch.setattr(
            f"resources.analytics.{module}.fetch", lambda cur, n: Table([], []), raising=False
        )
    monkeypatch.setattr(result_module, "fetch", lambda cur, n: Table([], []))
    operation.run(conn, operation.validate(params), max_rows=10)  # type: ignore[arg-type]
    texts = " ".join(t for t, _ in conn.log)
    assert str(value) not in texts
    assert any(value in (p.values() if isinstance(p, dict) else p) for _, p in conn.log if p)


@fast
@given(
    metric=st.sampled_from(METRICS),
    group_by=st.sampled_from(GROUP_BYS),
    n=st.integers(1, 100),
    m=st.integers(1, 100),
)
def test_the_sql_text_depends_only_on_whitelisted_choices(metric, group_by, n, m):
    from resources.analytics import segments

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(segments, "fetch", lambda cur, k: Table([], []))
        for fn, key in ((segments.customer_analysis, "min_group_size"), (segments.revenue_analysis, "top_n")):
            texts = []
            for value in (n, m):
                conn = _Conn()
                params = get_operation(fn.__name__).validate(
                    {"metric": metric, "group_by": group_by, key: value}
                )
                fn(conn, params, max_rows=1)  # type: ignore[arg-type]
                [(text, bound)] = conn.log
                assert GROUP_BY_SQL[group_by] in text and METRIC_SQL[metric] in text
                assert bound[key] == value and set(bound) <= {key, "edges"}
                texts.append(text)
            assert texts[0] == texts[1]


# --------------------------------------------------------------------------------------------------
# custom_complex_query parameters


def test_custom_params_are_scalars_and_may_come_as_json_text():
    p = validate_parameters(
        "custom_complex_query", {"query": "SELECT $1, $2, $3, $4, $5", "params": '["a", 1, 2.5, true, null]'}
    )
    assert p.params == ["a", 1, 2.5, True, None]


@pytest.mark.parametrize(
    "params", [[{"a": 1}], [[1]], "not json", list(range(MAX_QUERY_PARAMS + 1)), ["x" * 10_001]]
)
def test_custom_params_refused(params):
    with pytest.raises(InvalidParameters) as info:
        validate_parameters("custom_complex_query", {"query": "SELECT 1", "params": params})
    assert info.value.errors[0].field.startswith("params")


def test_custom_query_is_checked_at_validation_before_any_connection():
    with pytest.raises(QueryRejected):
        validate_parameters("custom_complex_query", {"query": "DELETE FROM canonical.entities"})
    with pytest.raises(InvalidParameters):
        validate_parameters("custom_complex_query", {"query": ""})


# --------------------------------------------------------------------------------------------------
# The guard: every bypass is refused with a precise reason

REFUSED = [
    # writes and DDL
    ("DELETE FROM canonical.entities", "not_select", "DELETE"),
    ("INSERT INTO canonical.entities (name) VALUES ('x')", "not_select", "INSERT"),
    ("UPDATE canonical.entities SET name = 'x'", "not_select", "UPDATE"),
    (
        "MERGE INTO canonical.entities e USING canonical.entities s ON true WHEN MATCHED THEN DELETE",
        "not_select",
        "MERGE",
    ),
    ("CREATE TABLE x (a int)", "not_select", "CREATE TABLE"),
    ("CREATE TABLE x AS SELECT 1", "not_select", "CREATE TABLE AS"),
    ("DROP TABLE canonical.entities", "not_select", "DROP"),
    ("ALTER TABLE canonical.entities ADD COLUMN x int", "not_select", "ALTER TABLE"),
    ("TRUNCATE canonical.entities", "not_select", "TRUNCATE"),
    ("GRANT ALL ON canonical.entities TO PUBLIC", "not_select", "GRANT"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", "not_select", "CREATE FUNCTION"),
    ("DO $$ BEGIN PERFORM 1; END $$", "not_select", "DO"),
    ("CALL p()", "not_select", "CALL"),
    ("VACUUM canonical.entities", "not_select", "VACUUM"),
    ("LOCK TABLE canonical.entities", "not_select", "LOCK"),
    ("COPY canonical.entities TO '/tmp/out'", "not_select", "COPY"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "not_select", "COPY"),
    ("EXPLAIN ANALYZE DELETE FROM canonical.entities", "not_select", "EXPLAIN"),
    ("PREPARE p AS SELECT 1", "not_select", "PREPARE"),
    ("EXECUTE p", "not_select", "EXECUTE"),
    ("LISTEN x", "not_select", "LISTEN"),
    ("NOTIFY x", "not_select", "NOTIFY"),
    ("BEGIN", "not_select", "transaction"),
    ("COMMIT", "not_select", "transaction"),
    ("SHOW ALL", "not_select", "SHOW"),
    ("LOAD 'x'", "not_select", "LOAD"),
    ("DISCARD ALL", "not_select", "DISCARD"),
    # settings and roles
    ("SET ROLE postgres", "not_select", "SET ROLE"),
    ("SET SESSION AUTHORIZATION postgres", "not_select", "SET SESSION_AUTHORIZATION"),
    ("RESET ROLE", "not_select", "SET"),
    ("SET statement_timeout = 0", "not_select", "SET"),
    ("SELECT set_config('role', 'postgres', false)", "denied_function", "set_config"),
    ("SELECT set_config('statement_timeout', '0', true)", "denied_function", "settings"),
    ("SELECT set_limit(0.01)", "denied_function", "settings"),
    # two statements, in every disguise
    ("SELECT 1; SELECT 2", "not_one_statement", "found 2"),
    ("SELECT 1; DELETE FROM canonical.entities", "not_one_statement", "DELETE"),
    ("SELECT 1;\n-- harmless?\nDROP TABLE canonical.entities;", "not_one_statement", "DROP"),
    ("SELECT 1 /* */ ; /* */ SET ROLE postgres", "not_one_statement", "SET ROLE"),
    # functions that sleep, signal, lock, touch files, write sequences, reach other servers, run SQL text
    ("SELECT pg_sleep(60)", "denied_function", "sleeps"),
    ("SELECT pg_sleep_for('1 minute')", "denied_function", "sleeps"),
    ("SELECT pg_sleep_until(now() + interval '1 minute')", "denied_function", "sleeps"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "denied_function", "signals"),
    ("SELECT pg_cancel_backend(1)", "denied_function", "signals"),
    ("SELECT pg_reload_conf()", "denied_function", "signals"),
    ("SELECT pg_advisory_lock(1)", "denied_function", "advisory"),
    ("SELECT pg_try_advisory_xact_lock(1)", "denied_function", "advisory"),
    ("SELECT pg_advisory_unlock_all()", "denied_function", "advisory"),
    ("SELECT pg_read_file('/etc/passwd')", "denied_function", "files"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "denied_function", "files"),
    ("SELECT * FROM pg_ls_dir('.')", "denied_function", "files"),
    ("SELECT pg_stat_file('postgresql.conf')", "denied_function", "files"),
    ("SELECT lo_import('/etc/passwd')", "denied_function", "large objects"),
    ("SELECT lo_export(1, '/tmp/x')", "denied_function", "large objects"),
    ("SELECT nextval('s')", "denied_function", "sequence"),
    ("SELECT setval('s', 1)", "denied_function", "sequence"),
    (
        "SELECT * FROM dblink('host=evil', 'select 1') AS t(a int)",
        "denied_function",
        "another database server",
    ),
    ("SELECT query_to_xml('select pg_sleep(60)', true, true, '')", "denied_function", "SQL text"),
    ("SELECT table_to_xml('canonical.entities', true, true, '')", "denied_function", "SQL text"),
    ("SELECT pg_notify('c', 'x')", "denied_function", "notifications"),
    ("SELECT pg_switch_wal()", "denied_function", "administration"),
    ("SELECT pg_stat_reset()", "denied_function", "administration"),
    # reads that write or lock
    ("WITH d AS (DELETE FROM canonical.entities RETURNING *) SELECT * FROM d", "data_modifying", "DELETE"),
    ("WITH u AS (UPDATE canonical.entities SET name = 'x' RETURNING 1) SELECT 1", "data_modifying", "UPDATE"),
    (
        "WITH i AS (INSERT INTO canonical.entities (name) VALUES ('x') RETURNING 1) SELECT 1",
        "data_modifying",
        "INSERT",
    ),
    ("SELECT * INTO new_table FROM canonical.entities", "select_into", "INTO"),
    ("SELECT * FROM canonical.entities FOR UPDATE", "row_locks", "FOR UPDATE"),
    ("SELECT * FROM canonical.entities FOR SHARE SKIP LOCKED", "row_locks", "FOR UPDATE/SHARE"),
    # not a query at all
    ("", "empty", "empty"),
    ("   \n\t", "empty", "empty"),
    (";;", "empty", "no statement"),
    ("-- just a comment", "empty", "no statement"),
    ("SELEC 1", "parse_error", "syntax error"),
    ("SELECT 'unterminated", "parse_error", "unterminated"),
    ("SELECT 1\x00; DROP TABLE x", "parse_error", "NUL"),
]


@pytest.mark.parametrize(("query", "rule", "words"), REFUSED)
def test_the_guard_refuses_each_bypass_with_a_precise_reason(query, rule, words):
    with pytest.raises(QueryRejected) as info:
        check_query(query)
    assert info.value.rule == rule, info.value.reason
    assert words.lower() in info.value.reason.lower(), info.value.reason
    assert info.value.as_dict()["rule"] == rule


ACCEPTED = [
    "SELECT 1",
    "select * from entities",
    "SELECT industry, count(*) FROM canonical.entities GROUP BY 1 ORDER BY 2 DESC",
    "WITH t AS (SELECT * FROM canonical.entities) SELECT count(*) FROM t",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "VALUES (1), (2)",
    "TABLE canonical.entities",
    "SELECT 1 UNION ALL SELECT 2 ORDER BY 1",
    "SELECT name FROM canonical.entities WHERE name LIKE '%Corp%'",
    "SELECT 'DELETE FROM x; SELECT pg_sleep(1)' AS just_text",
    "SELECT 1 -- ; DROP TABLE x",
    "SELECT 1 /* ; pg_sleep(1) */",
    "SELECT 1;",
    "  SELECT 1 ;  ",
    "SELECT similarity(a.name, b.name) FROM canonical.entities a, canonical.entities b LIMIT 1",
    "SELECT sleep_score, pg_sleep_column FROM (SELECT 1 AS sleep_score, 2 AS pg_sleep_column) s",
    "SELECT current_setting('statement_timeout'), pg_typeof(1), pg_size_pretty(1024::bigint)",
    "SELECT count(*) FILTER (WHERE revenue > 0) OVER () FROM canonical.entities",
    "SELECT jsonb_path_query(attributes, '$.name') FROM canonical.entities",
]


@pytest.mark.parametrize("query", ACCEPTED)
def test_the_guard_accepts_plain_reads(query):
    checked = check_query(query)
    wrapped = wrap_with_cap(checked)
    assert wrapped.startswith("SELECT * FROM (\n") and wrapped.endswith(") AS q LIMIT $1")
    assert not checked.text.rstrip().endswith(";")


def test_parameters_must_match_the_placeholders():
    assert check_query("SELECT $1, $2, $1", 2).param_count == 2
    assert wrap_with_cap(check_query("SELECT $1", 1)).endswith("LIMIT $2")
    with pytest.raises(QueryRejected, match=r"uses \$3 but 2"):
        check_query("SELECT $1, $3", 2)
    with pytest.raises(QueryRejected, match="uses no parameters"):
        check_query("SELECT 1", 1)


def test_deny_list_matches_any_spelling_of_a_name():
    for name in [
        "pg_sleep",
        "PG_SLEEP",
        "Pg_Sleep",
        "pg_advisory_lock_shared",
        "lo_unlink",
        "dblink_exec",
        "cursor_to_xmlschema",
        "database_to_xml_and_xmlschema",
    ]:
        assert denial_reason(name), name
    for name in ["sleep", "similarity", "count", "pg_typeof", "set_masklen", "xml_is_well_formed", "lower"]:
        assert denial_reason(name) is None, name


# --------------------------------------------------------------------------------------------------
# Hypothesis: denied calls hidden anywhere inside generated SELECTs

DENIED_SAMPLES = sorted(DENIED_FUNCTIONS) + [p + "x" for p, _ in DENIED_PREFIXES if not p.endswith("sleep")]


@st.composite
def spelled(draw: st.DrawFn, name: str) -> str:
    """A call to `name`, as PostgreSQL would resolve it: any case, schema-qualified, quoted, spaced."""
    how = draw(st.sampled_from(["plain", "upper", "mixed", "qualified", "quoted", "quoted_qualified"]))
    ident = {
        "plain": name,
        "upper": name.upper(),
        "mixed": "".join(c.upper() if i % 2 else c for i, c in enumerate(name)),
        "qualified": f"pg_catalog.{name}",
        "quoted": f'"{name}"',
        "quoted_qualified": f'"pg_catalog"."{name}"',
    }[how]
    gap = draw(st.sampled_from(["", " ", "\n", " /* c */ "]))
    arg = draw(st.sampled_from(["1", "'x'", "e.revenue", "(SELECT 1)", ""]))
    return f"{ident}{gap}({arg})"


EXPR = st.sampled_from(
    [
        "1",
        "e.revenue",
        "e.name",
        "count(*) OVER ()",
        "coalesce(e.industry, 'n/a')",
        "lower(e.name)",
        "e.attributes ->> 'region'",
        "now()",
        "'text; with ; semicolons'",
    ]
)


@st.composite
def select_with(draw: st.DrawFn, injected: str | None) -> str:
    """A SELECT over canonical tables, with `injected` (an expression) placed somewhere inside it."""
    cols = draw(st.lists(EXPR, min_size=1, max_size=3))
    where = draw(st.sampled_from(["", "WHERE e.revenue > 0", "WHERE e.name LIKE 'A%'"]))
    place = draw(
        st.sampled_from(
            [
                "target",
                "where",
                "subquery",
                "cte",
                "lateral",
                "order",
                "join_on",
                "case",
                "function_arg",
                "from_function",
                "union",
                "having",
                "values",
            ]
        )
    )
    x = injected
    if x is None:
        body = f"SELECT {', '.join(cols)} FROM canonical.entities e {where}"
    elif place == "target":
        body = f"SELECT {', '.join(cols)}, {x} AS v FROM canonical.entities e {where}"
    elif place == "where":
        body = f"SELECT {', '.join(cols)} FROM canonical.entities e WHERE {x} IS NOT NULL"
    elif place == "subquery":
        body = f"SELECT {', '.join(cols)} FROM canonical.entities e WHERE e.revenue > (SELECT {x})"
    elif place == "cte":
        body = f"WITH t AS (SELECT {x} AS v) SELECT {', '.join(cols)} FROM canonical.entities e, t"
    elif place == "lateral":
        body = f"SELECT {', '.join(cols)} FROM canonical.entities e CROSS JOIN LATERAL (SELECT {x} AS v) l"
    elif place == "order":
        body = f"SELECT {', '.join(cols)} FROM canonical.entities e ORDER BY {x}"
    elif place == "join_on":
        body = (
            f"SELECT {', '.join(cols)} FROM canonical.entities e JOIN canonical.entity_relationships r "
            f"ON r.child_canonical_id = e.canonical_id AND {x} IS NULL"
        )
    elif place == "case":
        body = f"SELECT CASE WHEN e.revenue > 0 THEN {x} END FROM canonical.entities e"
    elif place == "function_arg":
        body = f"SELECT coalesce(lower({x}::text), 'a') FROM canonical.entities e"
    elif place == "from_function":
        body = f"SELECT * FROM {x} AS f"
    elif place == "union":
        body = f"SELECT 1 UNION ALL SELECT {x}"
    elif place == "having":
        body = f"SELECT e.industry FROM canonical.entities e GROUP BY 1 HAVING count({x}) > 0"
    else:
        body = f"VALUES (1), ({x})"
    tail = draw(st.sampled_from(["", ";", " -- done", "\n;"]))
    return body + tail


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_hypothesis_denied_calls_anywhere_are_refused(data):
    name = data.draw(st.sampled_from(DENIED_SAMPLES))
    call = data.draw(spelled(name))
    query = data.draw(select_with(call))
    with pytest.raises(QueryRejected) as info:
        check_query(query)
    assert info.value.rule == "denied_function", (query, info.value.reason)
    assert name in info.value.reason and denial_reason(name) in info.value.reason


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_hypothesis_clean_selects_pass_and_wrap(data):
    harmless = data.draw(
        st.sampled_from(
            [
                "lower('x')",
                "pg_catalog.length('x')",
                "abs(-1)",
                "\"upper\"('x')",
                "similarity('a', 'b')",
                "generate_series(1, 2)",
            ]
        )
    )
    query = data.draw(select_with(harmless))
    checked = check_query(query)
    assert wrap_with_cap(checked).endswith("LIMIT $1")


@settings(max_examples=100, deadline=None)
@given(
    first=select_with(None),
    second=st.sampled_from(
        [
            "DELETE FROM canonical.entities",
            "SELECT 2",
            "SET ROLE x",
            "DROP TABLE canonical.entities",
            "COPY x FROM '/etc/passwd'",
        ]
    ),
)
def test_hypothesis_a_second_statement_is_always_refused(first, second):
    query = first.rstrip().rstrip(";").split(" -- ")[0] + "; " + second
    with pytest.raises(QueryRejected) as info:
        check_query(query)
    assert info.value.rule == "not_one_statement"


@pytest.mark.parametrize("op", ["customer_analysis", "revenue_analysis", "count_analysis"])
@fast
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "group_by": st.sampled_from(GROUP_BYS),
            "include_deleted": st.booleans(),
            "entityScope": st.sampled_from(ENTITY_SCOPES),
        },
    )
)
def test_entity_scope_defaults_to_source_and_takes_the_old_forms_camel_case(op, params):
    """A client that does not ask gets source scope: the answers it always had."""
    model = validate_parameters(op, params)
    assert model.entity_scope == params.get("entityScope", "source")
