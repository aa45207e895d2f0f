"""Normalisation of the fields the matcher compares: company names, legal forms, e-mail domains, web hosts,
phone numbers, countries, industries, addresses.

One implementation only, written as DuckDB SQL expressions: it runs vectorised over a million rows in the
resolution run, and the single-value helpers (`normalise_name`, ...) evaluate the very same expressions,
so what the tests pin is what the run does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb

__all__ = [
    "COUNTRY_CODES",
    "FREE_MAIL_DOMAINS",
    "LEGAL_FORMS",
    "NormalisedName",
    "normalise_country",
    "normalise_email_domain",
    "normalise_name",
    "normalise_phone",
    "normalise_website",
    "normalised_select_sql",
]

# Legal-form tokens as they read once case, dots and punctuation are gone ("L.L.C." -> "llc", "S.A." ->
# "sa", "Pte. Ltd." -> "pte ltd"). Multi-word forms first: the regex alternation takes the first that fits.
# A trailing run of these becomes the legal form, so "GmbH & Co. KG" is one form, not a name ending in "co".
LEGAL_FORMS: tuple[str, ...] = (
    "sp z oo",
    "and company",
    "and co",
    "incorporated",
    "inc",
    "corporation",
    "corp",
    "llc",
    "llp",
    "lp",
    "limited",
    "ltd",
    "pte",
    "pty",
    "plc",
    "gmbh",
    "mbh",
    "ag",
    "kg",
    "kgaa",
    "se",
    "sa",
    "sas",
    "sarl",
    "spa",
    "srl",
    "bv",
    "nv",
    "oy",
    "oyj",
    "ab",
    "as",
    "asa",
    "aps",
    "kk",
    "co",
    "company",
)

# One spelling per legal form, so "Inc." and "Incorporated" agree.
_LEGAL_CANONICAL = {
    "incorporated": "inc",
    "corporation": "corp",
    "limited": "ltd",
    "company": "co",
    "and company": "co",
    "and co": "co",
}

# Abbreviations spelled out. Only unambiguous ones: "tech" stays, since "Acme Tech" and "Acme Technology"
# are as often two companies as one, and the string comparison already sees them as close.
_ABBREVIATIONS = {
    "intl": "international",
    "mfg": "manufacturing",
    "mfrs": "manufacturers",
    "svcs": "services",
    "svc": "services",
    "srvcs": "services",
    "assoc": "associates",
    "bros": "brothers",
    "natl": "national",
    "mgmt": "management",
    "dept": "department",
    "grp": "group",
    "hldgs": "holdings",
    "sys": "systems",
}

# Letters that NFD does not decompose, so strip_accents leaves them.
_LETTERS = {"ß": "ss", "ø": "o", "ł": "l", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}

# Mailbox providers: a shared domain says nothing about which company a contact works for.
FREE_MAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mail.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "yandex.ru",
    "qq.com",
    "163.com",
)

# ISO 3166 alpha-2 codes by every spelling the sources use. A parallel canonical attribute carries
# `country_code`; when it is present it is read first, so this table only serves names and stray codes.
COUNTRY_CODES: dict[str, str] = {
    "united states": "US", "united states of america": "US", "usa": "US", "us": "US", "america": "US",
    "canada": "CA", "ca": "CA", "mexico": "MX", "mx": "MX", "brazil": "BR", "brasil": "BR", "br": "BR",
    "argentina": "AR", "ar": "AR", "chile": "CL", "cl": "CL", "colombia": "CO",
    "united kingdom": "GB", "uk": "GB", "gb": "GB", "great britain": "GB", "england": "GB", "britain": "GB",
    "germany": "DE", "deutschland": "DE", "de": "DE", "france": "FR", "fr": "FR", "spain": "ES",
    "espana": "ES", "es": "ES", "italy": "IT", "italia": "IT", "it": "IT", "netherlands": "NL",
    "the netherlands": "NL", "holland": "NL", "nl": "NL", "sweden": "SE", "poland": "PL", "polska": "PL",
    "pl": "PL", "switzerland": "CH", "schweiz": "CH", "suisse": "CH", "ch": "CH", "ireland": "IE",
    "ie": "IE", "denmark": "DK", "dk": "DK", "austria": "AT", "at": "AT", "belgium": "BE", "be": "BE",
    "portugal": "PT", "pt": "PT", "norway": "NO", "no": "NO", "finland": "FI", "fi": "FI",
    "japan": "JP", "jp": "JP", "china": "CN", "cn": "CN", "india": "IN", "in": "IN", "singapore": "SG",
    "sg": "SG", "australia": "AU", "au": "AU", "south korea": "KR", "korea": "KR", "kr": "KR",
    "indonesia": "ID", "id": "ID", "vietnam": "VN", "viet nam": "VN", "vn": "VN", "new zealand": "NZ",
    "nz": "NZ", "united arab emirates": "AE", "uae": "AE", "ae": "AE", "saudi arabia": "SA",
    "israel": "IL", "il": "IL", "turkey": "TR", "turkiye": "TR", "tr": "TR", "south africa": "ZA",
    "za": "ZA", "nigeria": "NG", "ng": "NG", "kenya": "KE", "ke": "KE", "egypt": "EG", "eg": "EG",
    "hong kong": "HK", "hk": "HK", "taiwan": "TW", "tw": "TW", "malaysia": "MY", "my": "MY",
    "thailand": "TH", "th": "TH", "philippines": "PH", "ph": "PH", "russia": "RU", "ru": "RU",
}  # fmt: skip


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fold_sql(expr: str) -> str:
    """Lower case, no accents, the undecomposable letters spelled in ASCII."""
    out = f"lower(strip_accents(lower({expr})))"
    for letter, ascii_ in _LETTERS.items():
        out = f"replace({out}, {_sql_str(letter)}, {_sql_str(ascii_)})"
    # Most values are ASCII (as many bytes as characters), and for them folding is lower case alone: the
    # accent stripping and the nine replacements are most of the cost of a name's normalisation.
    return f"CASE WHEN strlen({expr}) = length({expr}) THEN lower({expr}) ELSE {out} END"


def _clean_words_sql(expr: str) -> str:
    """Folded text as words of letters and digits separated by single spaces; '' when nothing is left."""
    out = _fold_sql(expr)
    out = f"replace(replace({out}, '&', ' and '), '+', ' and ')"
    # Dots and apostrophes join ("L.L.C." -> "llc", "O'Brien" -> "obrien"); anything else separates words.
    out = f"translate({out}, '.''’`´', '')"
    out = f"trim(regexp_replace({out}, '[^\\p{{L}}\\p{{N}}]+', ' ', 'g'))"
    return out


def _abbreviations_sql(expr: str) -> str:
    """`expr` with abbreviations spelled out; `expr` should be a column (it is read once per abbreviation,
    but only on the rows that hold one)."""
    out = expr
    for short, full in _ABBREVIATIONS.items():
        out = f"regexp_replace({out}, '\\b{short}\\b', '{full}', 'g')"
    any_ = "|".join(_ABBREVIATIONS)
    return f"CASE WHEN regexp_matches({expr}, '\\b(?:{any_})\\b') THEN {out} ELSE {expr} END"


# Matched on the reversed words, anchored at the start: a trailing run of legal forms, each followed (in
# reverse) by a space, so the name always keeps at least one word before it.
_REVERSED_FORMS_RE = "^((?:(?:" + "|".join(f[::-1] for f in LEGAL_FORMS) + ") )+)"


def _legal_canonical_sql(expr: str) -> str:
    out = f"trim({expr})"
    for long in sorted(_LEGAL_CANONICAL, key=len, reverse=True):
        out = f"regexp_replace({out}, '\\b{long}\\b', '{_LEGAL_CANONICAL[long]}', 'g')"
    return out


def _name_words_sql(expr: str) -> str:
    """SQL for a raw company name's folded words, abbreviations spelled out, no leading "the"."""
    return f"regexp_replace({_clean_words_sql(expr)}, '^(?:the )+', '')"


def _legal_suffix_length_sql(words: str) -> str:
    """SQL for the length of the trailing legal-form run of a `_name_words_sql` column (0 when none)."""
    return f"length(regexp_extract(reverse({words}), '{_REVERSED_FORMS_RE}', 1))"


def _name_split_sql(words: str, suffix_len: str) -> tuple[str, str]:
    """SQL for (name, legal form) from columns of `_name_words_sql` and `_legal_suffix_length_sql`
    output; NULL when empty."""
    name = f"left({words}, length({words}) - {suffix_len})"
    form = f"CASE WHEN {suffix_len} > 0 THEN {_legal_canonical_sql(f'right({words}, {suffix_len})')} END"
    return f"nullif({_abbreviations_sql(name)}, '')", f"nullif({form}, '')"


def _email_domain_sql(expr: str) -> str:
    domain = f"CASE WHEN contains({expr}, '@') THEN nullif(rtrim(lower(trim(split_part({expr}, '@', -1))), '> '), '') END"
    free = ", ".join(_sql_str(d) for d in FREE_MAIL_DOMAINS)
    return f"CASE WHEN {domain} IN ({free}) THEN NULL ELSE {domain} END"


def _website_sql(expr: str) -> str:
    host = f"lower(trim({expr}))"
    host = f"regexp_replace({host}, '^[a-z][a-z0-9+.-]*://', '')"
    host = f"regexp_replace({host}, '^www[0-9]*\\.', '')"
    host = f"regexp_extract({host}, '^([^/:?#\\s]+)', 1)"
    return f"nullif(rtrim({host}, '.'), '')"


def _phone_sql(expr: str) -> str:
    # The last nine digits: the same number written with and without a country or trunk prefix agrees.
    digits = f"regexp_replace(CAST({expr} AS VARCHAR), '[^0-9]', '', 'g')"
    return f"CASE WHEN length({digits}) >= 7 THEN right({digits}, 9) END"


def _country_sql(code_expr: str, name_expr: str, alias_table: str) -> str:
    key = f"trim(regexp_replace(replace({_fold_sql(name_expr)}, '.', ''), '[^a-z]+', ' ', 'g'))"
    code = f"upper(nullif(trim(CAST({code_expr} AS VARCHAR)), ''))"
    looked_up = f"(SELECT a.code FROM {alias_table} a WHERE a.alias = {key})"
    return f"coalesce({code}, {looked_up}, nullif(upper({key}), ''))"


def _industry_sql(expr: str) -> str:
    # Some sources carry a numeric classification code (NAICS) where others carry a sector name: a code
    # never equals a name, so it counts as unknown rather than as a disagreement.
    folded = _clean_words_sql(f"CAST({expr} AS VARCHAR)")
    return f"CASE WHEN regexp_matches({folded}, '^[0-9 ]*$') THEN NULL ELSE {folded} END"


def _address_sql(expr: str) -> str:
    out = _clean_words_sql(f"CAST({expr} AS VARCHAR)")
    for short, full in {
        "st": "street",
        "rd": "road",
        "ave": "avenue",
        "blvd": "boulevard",
        "str": "strasse",
    }.items():
        out = f"regexp_replace({out}, '\\b{short}\\b', '{full}', 'g')"
    return f"nullif({out}, '')"


def _number_sql(expr: str) -> str:
    return f"CASE WHEN TRY_CAST({expr} AS DOUBLE) >= 0 THEN TRY_CAST({expr} AS DOUBLE) END"


COUNTRY_ALIAS_TABLE = "resolution_country_alias"


def create_country_alias_table(con: duckdb.DuckDBPyConnection) -> None:
    """The alias -> ISO code table `_country_sql` reads; idempotent."""
    con.execute(f"CREATE OR REPLACE TABLE {COUNTRY_ALIAS_TABLE} (alias VARCHAR PRIMARY KEY, code VARCHAR)")
    con.executemany(f"INSERT INTO {COUNTRY_ALIAS_TABLE} VALUES (?, ?)", list(COUNTRY_CODES.items()))


def normalised_select_sql(source: str, columns: set[str]) -> str:
    """A SELECT over `source` (a table with the input columns present in `columns`; the rest count as NULL)
    giving the matcher's columns. Run `create_country_alias_table` on the connection first."""

    def col(name: str) -> str:
        return f'"{name}"' if name in columns else "NULL"

    def text(name: str) -> str:
        return f"CAST({col(name)} AS VARCHAR)"

    name, _ = _name_split_sql("name_words", "name_suffix_len")
    email_domain = _email_domain_sql(text("email"))
    website = _website_sql(text("website"))
    # Industries, countries, addresses and legal forms repeat across records: each distinct value is
    # normalised once and joined back, rather than its regexes run on every row.
    return f"""
WITH words0 AS (
  SELECT *, {_name_words_sql(text("name"))} AS name_words FROM {source}
),
words AS (
  SELECT *, {_legal_suffix_length_sql("name_words")} AS name_suffix_len FROM words0
),
suffixed AS (
  SELECT *, CASE WHEN name_suffix_len > 0 THEN right(name_words, name_suffix_len) END AS legal_suffix_raw
  FROM words
),
legal_forms AS (
  SELECT legal_suffix_raw, nullif({_legal_canonical_sql("legal_suffix_raw")}, '') AS legal_form_norm
  FROM (SELECT DISTINCT legal_suffix_raw FROM suffixed WHERE legal_suffix_raw IS NOT NULL)
),
industries AS (
  SELECT industry_raw, {_industry_sql("industry_raw")} AS industry_norm
  FROM (SELECT DISTINCT {text("industry")} AS industry_raw FROM {source}) WHERE industry_raw IS NOT NULL
),
countries AS (
  SELECT country_code_raw, country_raw,
         {_country_sql("country_code_raw", "country_raw", COUNTRY_ALIAS_TABLE)} AS country_norm
  FROM (SELECT DISTINCT {text("country_code")} AS country_code_raw, {text("country")} AS country_raw FROM {source})
),
addresses AS (
  SELECT address_raw, {_address_sql("address_raw")} AS address_norm
  FROM (SELECT DISTINCT {text("address")} AS address_raw FROM {source}) WHERE address_raw IS NOT NULL
),
parts AS (
  SELECT
    CAST({col("canonical_id")} AS VARCHAR) AS unique_id,
    CAST({col("source_system")} AS VARCHAR) AS source_system,
    {name} AS name,
    f.legal_form_norm AS legal_form,
    c.country_norm AS country,
    i.industry_norm AS industry,
    {_number_sql(col("revenue"))} AS revenue,
    {_number_sql(col("employees"))} AS employees,
    {email_domain} AS email_domain,
    {website} AS website,
    {_phone_sql(col("phone"))} AS phone,
    a.address_norm AS address
  FROM suffixed w
  LEFT JOIN legal_forms f ON f.legal_suffix_raw = w.legal_suffix_raw
  LEFT JOIN industries i ON i.industry_raw = {text("industry")}
  LEFT JOIN countries c
    ON c.country_code_raw IS NOT DISTINCT FROM {text("country_code")} AND c.country_raw IS NOT DISTINCT FROM {text("country")}
  LEFT JOIN addresses a ON a.address_raw = {text("address")}
)
SELECT *,
  array_to_string(list_sort(string_split(name, ' ')), ' ') AS name_sorted,
  -- The name's first and last eight letters, for an optional blocking rule (`BlockingSettings.rules`),
  -- and copies of the name's first four letters and of the phone so that EM can block on them without
  -- switching their comparisons off.
  substr(name, 1, 8) AS name_head,
  right(name, 8) AS name_tail,
  substr(name, 1, 4) AS em_name_prefix,
  phone AS em_phone
FROM parts
"""


_lock = threading.Lock()
# One in-memory connection for the single-value helpers, made on first use; each call takes a cursor.
_shared: list[duckdb.DuckDBPyConnection] = []


def _cursor() -> duckdb.DuckDBPyConnection:
    with _lock:
        if not _shared:
            con = duckdb.connect(":memory:")
            create_country_alias_table(con)
            _shared.append(con)
        return _shared[0].cursor()


def _one(sql: str, value: Any) -> Any:
    cur = _cursor()
    try:
        row = cur.execute(f"SELECT {sql} FROM (SELECT ?::VARCHAR AS v)", [value]).fetchall()[0]
    finally:
        cur.close()
    return row[0] if len(row) == 1 else row


@dataclass(frozen=True, slots=True)
class NormalisedName:
    name: str | None  # folded words, abbreviations spelled out, legal form removed; None when nothing left
    legal_form: str | None  # the trailing legal form(s), one spelling each ("inc", "pte ltd", "gmbh co kg")


def normalise_name(raw: str | None) -> NormalisedName:
    """A company name as the matcher compares it. Never raises; None and blank give NormalisedName(None, None)."""
    name_sql, form_sql = _name_split_sql("w", "n")
    words = f"SELECT {_name_words_sql('v')} AS w FROM (SELECT ?::VARCHAR AS v)"
    cur = _cursor()
    try:
        rows = cur.execute(
            f"SELECT {name_sql}, {form_sql} FROM (SELECT w, {_legal_suffix_length_sql('w')} AS n FROM ({words}))",
            [raw],
        ).fetchall()
    finally:
        cur.close()
    name, form = rows[0]
    return NormalisedName(name, form)


def normalise_email_domain(raw: str | None) -> str | None:
    """The domain of an e-mail address; None for free-mail providers and anything without an @."""
    out: str | None = _one(_email_domain_sql("v"), raw)
    return out


def normalise_website(raw: str | None) -> str | None:
    """A website's host without scheme, www., port or path."""
    out: str | None = _one(_website_sql("v"), raw)
    return out


def normalise_phone(raw: str | None) -> str | None:
    """The last nine digits of a phone number with at least seven digits, else None."""
    out: str | None = _one(_phone_sql("v"), raw)
    return out


def normalise_country(code: str | None, name: str | None) -> str | None:
    """An ISO alpha-2 code from a `country_code` (preferred) or a country name or code; unknown names
    come back folded and upper-cased so two spellings of one unknown still agree."""
    cur = _cursor()
    try:
        rows = cur.execute(
            f"SELECT {_country_sql('c', 'n', COUNTRY_ALIAS_TABLE)} FROM (SELECT ?::VARCHAR AS c, ?::VARCHAR AS n)",
            [code, name],
        ).fetchall()
    finally:
        cur.close()
    out: str | None = rows[0][0]
    return out
