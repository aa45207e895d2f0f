"""Labelled company records for the entity-resolution benchmark and tests: seeded, deterministic.

Companies live in one home system (crm, erp or legacy); 30 % of them have a twin in another system (a
tenth of those a third record in the remaining one), and 1 % of CRM companies were entered twice in the
CRM. A twin carries what real exports do to a name and its figures: legal-form variants ("Inc" /
"Incorporated" / none), case and punctuation, typos, abbreviations ("International" / "Intl"), swapped
words, missing fields, drifting revenue and headcount, reformatted phones and web addresses.

Hard negatives, each a different entity from the company it resembles:
- a subsidiary in its parent's system with a parent link, sharing the parent's name plus a word, its
  e-mail domain, industry and country ("Acme Foods" / "Acme Foods Europe GmbH");
- a sibling name: the same leading words, another trade ("Acme Foods" / "Acme Tools");
- a namesake: the very same name in another country with other figures.

Columns are the matcher's input (canonical_id, source_system, name, industry, revenue, employees,
country, email, website, phone, address) plus `entity_id` (the truth) and `parent_canonical_id`.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

import pandas as pd

__all__ = ["GENERATOR_VERSION", "Generated", "generate"]

GENERATOR_VERSION = 1
TWIN_SHARE = 0.30
THIRD_SHARE = 0.10  # of the twinned
CRM_DUPLICATE_SHARE = 0.01
SUBSIDIARY_SHARE = 0.02
SIBLING_SHARE = 0.02
NAMESAKE_SHARE = 0.01

_SYLLABLES = [
    "ab",
    "ac",
    "ad",
    "al",
    "am",
    "an",
    "ar",
    "as",
    "at",
    "ba",
    "be",
    "bi",
    "bo",
    "bra",
    "bri",
    "ca",
    "ce",
    "ci",
    "co",
    "cra",
    "cu",
    "da",
    "de",
    "di",
    "do",
    "dra",
    "du",
    "el",
    "em",
    "en",
    "er",
    "es",
    "ex",
    "fa",
    "fe",
    "fi",
    "fo",
    "fra",
    "ga",
    "ge",
    "gi",
    "go",
    "gra",
    "ha",
    "he",
    "hi",
    "ho",
    "ka",
    "ke",
    "ki",
    "ko",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "nu",
    "or",
    "pa",
    "pe",
    "pi",
    "po",
    "pra",
    "qua",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "sta",
    "su",
    "ta",
    "te",
    "ti",
    "to",
    "tra",
    "tri",
    "tu",
    "va",
    "ve",
    "vi",
    "vo",
    "xa",
    "xi",
    "za",
    "ze",
    "zo",
]
_ENDINGS = ("", "", "", "x", "n", "r", "s", "tek", "via", "ona", "ix", "ex", "ara", "ent", "ium", "ly", "on")
_ADJ = [
    "Global",
    "United",
    "Advanced",
    "Pacific",
    "Atlantic",
    "Northern",
    "Southern",
    "Eastern",
    "Western",
    "Central",
    "Royal",
    "Prime",
    "Summit",
    "Pioneer",
    "Premier",
    "Modern",
    "Classic",
    "Golden",
    "Silver",
    "Blue",
    "Green",
    "Red",
    "Bright",
    "Rapid",
    "Smart",
    "Secure",
    "Trusted",
    "Digital",
    "Integrated",
    "Applied",
    "Strategic",
    "Dynamic",
    "Creative",
    "Precision",
    "Quantum",
    "Coastal",
    "Mountain",
    "River",
    "Lake",
    "Valley",
    "Urban",
    "Metro",
    "National",
    "Continental",
    "Allied",
    "Superior",
    "First",
    "Alpha",
    "Omega",
    "Delta",
    "Apex",
    "Vertex",
    "Horizon",
    "Frontier",
    "Keystone",
]
_TRADES = [
    "Foods",
    "Tools",
    "Logistics",
    "Systems",
    "Solutions",
    "Services",
    "Consulting",
    "Manufacturing",
    "Technologies",
    "Software",
    "Energy",
    "Capital",
    "Partners",
    "Health",
    "Pharma",
    "Foods",
    "Retail",
    "Motors",
    "Labs",
    "Analytics",
    "Media",
    "Design",
    "Construction",
    "Engineering",
    "Holdings",
    "Ventures",
    "Networks",
    "Security",
    "Travel",
    "Freight",
    "Marine",
    "Mining",
    "Chemicals",
    "Metals",
    "Power",
    "Water",
    "Telecom",
    "Cloud",
    "Data",
    "Insurance",
    "Realty",
    "Properties",
    "Hospitality",
    "Textiles",
    "Apparel",
    "Furniture",
    "Electronics",
    "Robotics",
    "Aerospace",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Martinez",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Carter",
    "Mitchell",
    "Roberts",
    "Turner",
    "Phillips",
    "Campbell",
    "Parker",
    "Evans",
    "Edwards",
    "Collins",
    "Stewart",
    "Morris",
    "Murphy",
    "Cook",
    "Rogers",
    "Morgan",
    "Cooper",
    "Peterson",
    "Reed",
    "Bailey",
    "Bell",
    "Kelly",
    "Howard",
    "Ward",
    "Cox",
    "Richardson",
    "Wood",
    "Watson",
    "Brooks",
    "Bennett",
    "Gray",
    "James",
    "Hughes",
    "Price",
    "Sanders",
    "Myers",
    "Long",
    "Ross",
    "Foster",
    "Powell",
    "Jenkins",
    "Perry",
    "Russell",
    "Sullivan",
    "Fisher",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Dubois",
    "Moreau",
    "Laurent",
    "Lefèvre",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Romano",
    "García",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Nowak",
    "Kowalski",
    "Wiśniewski",
    "Jensen",
    "Nielsen",
    "Hansen",
    "Andersson",
    "Johansson",
    "Larsson",
    "Tanaka",
    "Suzuki",
    "Watanabe",
    "Wang",
    "Li",
    "Zhang",
    "Chen",
    "Liu",
    "Kim",
    "Park",
    "Choi",
    "Singh",
    "Kumar",
    "Sharma",
    "Patel",
    "Gupta",
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
]
_INDUSTRY_OF_TRADE = {
    "Foods": "Food & Beverage", "Tools": "Manufacturing", "Logistics": "Logistics", "Systems": "Technology",
    "Solutions": "Technology", "Services": "Consulting", "Consulting": "Consulting",
    "Manufacturing": "Manufacturing", "Technologies": "Technology", "Software": "Software", "Energy": "Energy",
    "Capital": "Financial Services", "Partners": "Consulting", "Health": "Healthcare", "Pharma": "Pharmaceuticals",
    "Retail": "Retail", "Motors": "Automotive", "Labs": "Biotechnology", "Analytics": "Technology",
    "Media": "Media", "Design": "Marketing", "Construction": "Construction", "Engineering": "Construction",
    "Holdings": "Financial Services", "Ventures": "Financial Services", "Networks": "Telecommunications",
    "Security": "Security", "Travel": "Travel", "Freight": "Transportation", "Marine": "Transportation",
    "Mining": "Mining", "Chemicals": "Chemicals", "Metals": "Mining", "Power": "Utilities", "Water": "Utilities",
    "Telecom": "Telecommunications", "Cloud": "Software", "Data": "Technology", "Insurance": "Insurance",
    "Realty": "Real Estate", "Properties": "Real Estate", "Hospitality": "Hospitality", "Textiles": "Fashion",
    "Apparel": "Fashion", "Furniture": "Consumer Goods", "Electronics": "Hardware", "Robotics": "Hardware",
    "Aerospace": "Aerospace",
}  # fmt: skip
_NAICS = {"Manufacturing": "332", "Retail": "452210", "Technology": "541512", "Healthcare": "621111"}
_COUNTRIES = (
    ("United States", "US", "+1", 30), ("Canada", "CA", "+1", 4), ("United Kingdom", "GB", "+44", 6),
    ("Germany", "DE", "+49", 6), ("France", "FR", "+33", 5), ("Spain", "ES", "+34", 3), ("Italy", "IT", "+39", 3),
    ("Netherlands", "NL", "+31", 3), ("Poland", "PL", "+48", 2), ("Switzerland", "CH", "+41", 2),
    ("Sweden", "SE", "+46", 2), ("Japan", "JP", "+81", 3), ("India", "IN", "+91", 3), ("Singapore", "SG", "+65", 2),
    ("Australia", "AU", "+61", 3), ("Brazil", "BR", "+55", 3), ("Mexico", "MX", "+52", 2),
    ("South Africa", "ZA", "+27", 1), ("United Arab Emirates", "AE", "+971", 1), ("China", "CN", "+86", 3),
)  # fmt: skip
_COUNTRY_SPELLINGS = {
    "United States": ("USA", "US", "United States of America"),
    "United Kingdom": ("UK", "GB"),
}
_LEGAL = ("Inc", "Inc.", "LLC", "Ltd", "Ltd.", "Limited", "Corp", "Corp.", "Corporation", "GmbH", "AG", "S.A.",
          "BV", "PLC", "Pty Ltd", "Pte. Ltd.", "Co.", "", "", "", "")  # fmt: skip
_LEGAL_VARIANTS = {
    "Inc": ("Inc.", "Incorporated", "INC", ""), "Inc.": ("Inc", "Incorporated", ""), "LLC": ("L.L.C.", "llc", ""),
    "Ltd": ("Ltd.", "Limited", ""), "Ltd.": ("Ltd", "Limited", ""), "Limited": ("Ltd", "Ltd.", ""),
    "Corp": ("Corp.", "Corporation", ""), "Corp.": ("Corp", "Corporation", ""), "Corporation": ("Corp", ""),
    "GmbH": ("GMBH", ""), "AG": ("",), "S.A.": ("SA", ""), "BV": ("B.V.", ""), "PLC": ("plc", ""),
    "Pty Ltd": ("Pty. Ltd.", "Pty Limited", ""), "Pte. Ltd.": ("Pte Ltd", ""), "Co.": ("Co", "& Co.", "Company", ""),
    "": ("", "", "Inc", "Ltd"),
}  # fmt: skip
_ABBREVIATE = {"International": "Intl", "Manufacturing": "Mfg", "Services": "Svcs", "and": "&", "&": "and"}
_SUB_WORDS = (
    "Europe",
    "Asia",
    "UK",
    "Deutschland",
    "International",
    "Americas",
    "Nordic",
    "Services",
    "Digital",
)
_FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com")
_STREETS = ("Main St", "High Street", "Market Rd", "Park Avenue", "Station Road", "Church St", "Mill Lane")


@dataclass(frozen=True)
class Generated:
    records: pd.DataFrame
    companies: int
    seed: int


@dataclass
class _Company:
    entity_id: str
    name: str  # without legal form
    legal: str
    industry: str
    country: tuple[str, str, str, int]
    domain: str
    revenue: float | None
    employees: int | None
    phone: str
    street: str


def _pseudo(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))) + rng.choice(_ENDINGS)
    return word.capitalize()


def _base_name(rng: random.Random) -> tuple[str, str]:
    """A company name without legal form, and its trade word (sets the industry)."""
    trade = rng.choice(_TRADES)
    r = rng.random()
    if r < 0.30:
        return f"{_pseudo(rng)} {trade}", trade
    if r < 0.50:
        return f"{rng.choice(_LAST)} {_pseudo(rng)} {trade}", trade
    if r < 0.65:
        return f"{rng.choice(_ADJ)} {_pseudo(rng)} {trade}", trade
    if r < 0.75:
        return f"{rng.choice(_LAST)} & {rng.choice(_LAST)} {trade}", trade
    if r < 0.85:
        return f"{_pseudo(rng)}{rng.choice(('', ' Group', ' International'))}", trade
    return f"{_pseudo(rng)} {rng.choice(_ADJ)} {trade}", trade


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch in string.ascii_lowercase + string.digits) or "co"


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    op = rng.random()
    letter = rng.choice(string.ascii_lowercase)
    if op < 0.3:
        return text[:i] + letter + text[i + 1 :]
    if op < 0.55:
        return text[:i] + text[i + 1 :]
    if op < 0.8:
        return text[:i] + letter + text[i:]
    return text[: i - 1] + text[i] + text[i - 1] + text[i + 1 :]


def _vary_name(rng: random.Random, name: str, legal: str) -> str:
    words = name.split(" ")
    if rng.random() < 0.3:
        words = [_ABBREVIATE.get(w, w) for w in words]
    if rng.random() < 0.04 and len(words) >= 2:
        words = [*words[1:], words[0]]
    out = " ".join(words)
    if rng.random() < 0.25:
        out = _typo(rng, out)
    form = rng.choice(_LEGAL_VARIANTS.get(legal, ("",))) if rng.random() < 0.6 else legal
    full = f"{out} {form}".strip() if form else out
    r = rng.random()
    if r < 0.2:
        full = full.upper()
    elif r < 0.25:
        full = full.lower()
    elif r < 0.3:
        full = full.replace(" ", ", ", 1)
    return full


def _drift(rng: random.Random, value: float | None, spread: float) -> float | None:
    if value is None or rng.random() < 0.1:
        return None
    r = rng.random()
    if r < 0.5:
        return value
    if r < 0.9:
        return round(value * rng.uniform(1 - spread, 1 + spread), 2)
    return round(value * rng.uniform(1 - 3 * spread, 1 + 3 * spread), 2)


def _phone_text(rng: random.Random, prefix: str, digits: str) -> str:
    r = rng.random()
    if r < 0.33:
        return f"{prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"
    if r < 0.66:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return f"{prefix.replace('+', '00')}{digits}"


def _record(rng: random.Random, c: _Company, source: str, source_id: str, first: bool) -> dict[str, object]:
    """One system's record of company `c`; `first` is its home record (cleanest name and figures)."""
    name = f"{c.name} {c.legal}".strip() if first else _vary_name(rng, c.name, c.legal)
    revenue = c.revenue if first else _drift(rng, c.revenue, 0.08)
    employees = c.employees if first else _drift(rng, c.employees, 0.08)
    country_name, _code, prefix, _ = c.country
    country = (
        rng.choice(_COUNTRY_SPELLINGS.get(country_name, (country_name,)))
        if rng.random() < 0.2
        else country_name
    )
    phone = _phone_text(rng, prefix, c.phone)
    domain = c.domain
    if not first and rng.random() < 0.05:  # a second web domain (a rebrand, a country site)
        domain = domain.rsplit(".", 1)[0] + rng.choice((".net", ".org", ".eu"))
    if not first and rng.random() < 0.1:  # a direct line instead of the switchboard
        phone = _phone_text(rng, prefix, c.phone[:5] + "".join(rng.choice(string.digits) for _ in range(4)))
    web = rng.choice((f"https://www.{domain}", f"www.{domain}", f"http://{domain}/", domain))
    industry = c.industry
    if not first and rng.random() < 0.08:  # another taxonomy's word for the trade
        industry = rng.choice(tuple(set(_INDUSTRY_OF_TRADE.values())))
    rec: dict[str, object] = {
        "canonical_id": f"{source}_{source_id}",
        "source_system": source,
        "name": name,
        "industry": industry,
        "revenue": revenue,
        "employees": None if employees is None else round(employees),
        "country": country,
        "email": None,
        "website": None,
        "phone": None,
        "address": None,
        "entity_id": c.entity_id,
        "parent_canonical_id": None,
    }
    if source == "crm":
        mailbox = rng.choice(("info", "sales", "j.smith", "anna", "contact"))
        rec["email"] = f"{mailbox}@{rng.choice(_FREE_MAIL) if rng.random() < 0.1 else domain}"
        rec["phone"] = phone if rng.random() < 0.6 else None
        rec["website"] = web if rng.random() < 0.3 else None
    elif source == "erp":
        rec["website"] = web if rng.random() < 0.7 else None
        rec["phone"] = phone if rng.random() < 0.6 else None
        rec["address"] = c.street if rng.random() < 0.8 else None
    else:
        rec["industry"] = _NAICS.get(c.industry, "999")
        rec["country"] = None
        rec["phone"] = phone if rng.random() < 0.4 else None
        rec["address"] = c.street.upper() if rng.random() < 0.5 else None
    return rec


def generate(records: int, seed: int = 7) -> Generated:
    """About `records` labelled records (the count is approximate: it follows the twin shares)."""
    rng = random.Random(seed)
    per_company = 1 + TWIN_SHARE * (1 + THIRD_SHARE) + CRM_DUPLICATE_SHARE * 0.5
    per_company += SUBSIDIARY_SHARE + SIBLING_SHARE + NAMESAKE_SHARE
    n_companies = max(1, round(records / per_company))
    countries = [c for c in _COUNTRIES]
    weights = [c[3] for c in _COUNTRIES]
    used: set[str] = set()
    # Far from the sample files' ids (CUST-1001, ERP-2001, 30001), so both can be resolved together.
    next_id = {"crm": 500000, "erp": 600000, "legacy": 700000}
    out: list[dict[str, object]] = []

    def new_id(source: str) -> str:
        next_id[source] += 1
        n = next_id[source]
        return f"CUST-{n}" if source == "crm" else f"ERP-{n}" if source == "erp" else str(n)

    def company(
        entity: int, name: str, trade: str, country: tuple[str, str, str, int] | None = None
    ) -> _Company:
        revenue = None if rng.random() < 0.03 else round(rng.lognormvariate(14.5, 1.6), 2)
        employees = None if revenue is None else max(1, round(revenue / rng.uniform(80_000, 250_000)))
        return _Company(
            entity_id=f"E{entity}",
            name=name,
            legal=rng.choice(_LEGAL),
            industry=_INDUSTRY_OF_TRADE.get(trade, "Technology"),
            country=country or rng.choices(countries, weights)[0],
            domain=f"{_slug(name)}.{rng.choice(('com', 'com', 'io', 'net', 'co', 'de', 'co.uk'))}",
            revenue=revenue,
            employees=employees,
            phone="".join(rng.choice(string.digits) for _ in range(9)),
            street=f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}",
        )

    def unique_name() -> tuple[str, str]:
        while True:
            name, trade = _base_name(rng)
            if name.lower() not in used:
                used.add(name.lower())
                return name, trade

    sources = ("crm", "erp", "legacy")
    entity = 0
    while entity < n_companies:
        entity += 1
        name, trade = unique_name()
        c = company(entity, name, trade)
        home = rng.choices(sources, (0.5, 0.3, 0.2))[0]
        home_record = _record(rng, c, home, new_id(home), True)
        out.append(home_record)
        r = rng.random()
        if r < TWIN_SHARE:
            others = [s for s in sources if s != home]
            rng.shuffle(others)
            out.append(_record(rng, c, others[0], new_id(others[0]), False))
            if rng.random() < THIRD_SHARE:
                out.append(_record(rng, c, others[1], new_id(others[1]), False))
        if home == "crm" and rng.random() < CRM_DUPLICATE_SHARE:
            out.append(_record(rng, c, "crm", new_id("crm"), False))
        r = rng.random()
        if r < SUBSIDIARY_SHARE:
            # In the parent's system, with a parent link: same domain, industry and country.
            entity += 1
            sub_name = f"{c.name} {rng.choice(_SUB_WORDS)}"
            used.add(sub_name.lower())
            sub = company(entity, sub_name, trade, c.country)
            sub.domain, sub.industry = c.domain, c.industry
            rec = _record(rng, sub, home, new_id(home), True)
            rec["parent_canonical_id"] = home_record["canonical_id"]
            out.append(rec)
        elif r < SUBSIDIARY_SHARE + SIBLING_SHARE:
            entity += 1
            words = c.name.split(" ")
            other = rng.choice([t for t in _TRADES if t not in words])
            sib_name = " ".join([*words[:-1], other]) if len(words) > 1 else f"{c.name} {other}"
            if sib_name.lower() not in used:
                used.add(sib_name.lower())
                sib = company(entity, sib_name, other, c.country if rng.random() < 0.5 else None)
                s = rng.choice(sources)
                out.append(_record(rng, sib, s, new_id(s), True))
        elif r < SUBSIDIARY_SHARE + SIBLING_SHARE + NAMESAKE_SHARE:
            entity += 1
            other_country = rng.choice([x for x in countries if x[0] != c.country[0]])
            namesake = company(entity, c.name, trade, other_country)
            s = rng.choice(("crm", "erp"))
            out.append(_record(rng, namesake, s, new_id(s), True))
    frame = pd.DataFrame(out)
    return Generated(frame, entity, seed)
