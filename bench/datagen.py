"""Deterministic CRM export generator in the shape of `samples/crm-data/customer-data.json`.

One pass writes two files, streaming (a bounded buffer of lines, never the whole list):

- ``base``:    ``{"records": [...]}`` with N records, ids ``CUST-<n>`` rising with small gaps;
- ``changed``: the same records, except that every 10th record (index % 10 == 0) has one field changed
               (``total_orders`` + 1), so a reload of it changes exactly 10 % of the entities.

Records carry the sample's 20 fields with realistic variety: ~300 first and ~400 last names, company
names from several patterns (some with non-ASCII letters), 40 industries, 35 countries with their
regions, log-normal revenue (some with cents, a few missing), employees correlated with revenue, dates
in 2012..2025. About 0.1 % of the records are invalid on purpose (negative revenue, blank company
name, text employee count) so the validation and refusal path is exercised; they are refused in every
scenario alike.

Files are written one record per line with json.dumps' default separators: the same bytes for the
same (records, seed, GENERATOR_VERSION), whatever the machine. A `.meta.json` beside them records
what was generated; `ensure_files` reuses files whose meta matches.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

GENERATOR_VERSION = 2
CHANGE_EVERY = 10
INVALID_SHARE = 0.001


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty Anthony Margaret Mark Sandra "
    "Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy "
    "George Melissa Timothy Deborah Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob "
    "Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela Justin Emma Scott "
    "Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine Alexander Debra Frank Rachel Patrick "
    "Carolyn Raymond Janet Jack Catherine Dennis Maria Jerry Heather Tyler Diane Aaron Ruth Jose Julie Adam Olivia "
    "Nathan Joyce Henry Virginia Douglas Victoria Zachary Kelly Peter Lauren Kyle Christina Ethan Joan Walter Evelyn "
    "Noah Judith Jeremy Megan Christian Andrea Keith Cheryl Roger Hannah Terry Jacqueline Gerald Martha Harold Gloria "
    "Sean Teresa Austin Ann Carl Sara Arthur Madison Lawrence Frances Dylan Kathryn Jesse Janice Jordan Jean Bryan "
    "Abigail Billy Alice Joe Judy Bruce Sophia Gabriel Grace Logan Denise Albert Amber Willie Doris Alan Marilyn "
    "Juan Danielle Wayne Beverly Elijah Isabella Randy Theresa Roy Diana Vincent Natalie Ralph Brittany Eugene "
    "Charlotte Russell Marie Bobby Kayla Mason Alexis Philip Lori Louis Wei Mei Hiroshi Yuki Sanjay Priya Ahmed "
    "Fatima Lars Ingrid Pierre Camille Giulia Marco Jürgen Søren Zoë José Łukasz Ana Chen Aiko Olga Dmitri Ngozi "
    "Kwame Amara Thabo Mateo Valentina Santiago Lucía Björn Astrid Anouk Daan Mohammed Layla Omar Yara Ravi Anika"
)
_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim "
    "Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler "
    "Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds "
    "Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford "
    "Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman "
    "Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon "
    "Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice "
    "Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer "
    "Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong "
    "Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
    "Contreras Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins Greene Nunez "
    "Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin Dominguez Carr Lawson "
    "Jacobs OBrien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey Williamson Gilbert Dean Sims Espinoza "
    "Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch Rojas Lucas Marquez Fields Park "
    "Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson Acosta Brewer May Holland Juarez "
    "Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett Navarro Figueroa Keller Avila Wade Molina "
    "Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck Lambert Miranda Byrd Craig Ayala Lowe Frazier "
    "Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes Shelton Schwartz Norris Jennings Watts Duran "
    "Walters Cohen McDaniel Moran Parks Steele Vaughn Becker Holt DeLeon Barker Terry Hale Leon Hail Benson Haynes "
    "Horton Miles Lyons Pham Graves Bush Thornton Wolfe Warner Cabrera McKinney Mann Zimmerman Dawson Lara Fletcher "
    "Page McCarthy Love Robles Cervantes Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin Daniel Simon "
    "Velasquez Hardy Higgins Aguirre Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey "
    "Müller Schäfer Großmann Nørgaard Åberg Dvořák Kowalczyk Wiśniewski Öztürk Çelik Sørensen Lefèvre Gauthier "
    "Tanaka Suzuki Watanabe Yamamoto Nakamura Kobayashi Sato Ito Zhang Liu Huang Zhao Wu Zhou Okafor Mensah Dlamini"
)
_ADJ = _words(
    "Global Advanced Pacific Atlantic Northern Southern Eastern Western Central United Integrated Strategic "
    "Dynamic Premier Summit Pinnacle Apex Vertex Bright Clear Blue Green Red Silver Golden Iron Stone Crystal "
    "Quantum Digital Smart Rapid Prime Core First Next New Modern Future Alpha Beta Delta Omega Nova Stellar "
    "Solar Lunar Coastal Mountain Valley River Lake Harbor Urban Metro Royal Noble Trusted Reliable Precision "
    "Creative Innovative Agile Lean Open True Pure Vital Bold Swift Keen Wise Sharp Grand Great Little"
)
_NOUN = _words(
    "Systems Solutions Technologies Industries Logistics Analytics Dynamics Networks Partners Ventures Holdings "
    "Enterprises Labs Works Foods Energy Health Capital Consulting Manufacturing Retail Media Software Devices "
    "Materials Motors Robotics Foundry Supply Trading Textiles Pharma Biotech Farms Builders Engineering Design "
    "Studios Security Services Outfitters Brands Markets Freight Aviation Marine Mining Chemicals Metals Power "
    "Water Telecom Cloud Data Insights Learning Education Finance Insurance Realty Properties Hospitality Travel"
)
_SUFFIX = (
    "Inc",
    "Inc.",
    "LLC",
    "Ltd",
    "Ltd.",
    "Corp",
    "Corporation",
    "Group",
    "Co.",
    "GmbH",
    "AG",
    "S.A.",
    "SAS",
    "BV",
    "Pty Ltd",
    "KK",
    "PLC",
    "& Co",
    "Holdings",
    "International",
    "",
)
_UNICODE_NAMES = (
    "Société Générale d'Études",
    "Müller & Söhne",
    "Łódź Przemysł",
    "株式会社 山田製作所",
    "Ørsted Kraft",
    "Café Olé",
    "Škoda Komponenty",
    "Αθηνά Εμπόριο",
    "Ñandú Andino",
    "Zürich Präzision",
    "北京数据科技",
    "Москва Торг",
    "İstanbul Lojistik",
    "Đà Nẵng Trading",
)
_INDUSTRIES = (
    "Technology",
    "Retail",
    "Manufacturing",
    "Healthcare",
    "Financial Services",
    "Education",
    "Energy",
    "Logistics",
    "Telecommunications",
    "Media",
    "Hospitality",
    "Real Estate",
    "Construction",
    "Agriculture",
    "Automotive",
    "Aerospace",
    "Pharmaceuticals",
    "Biotechnology",
    "Insurance",
    "Consulting",
    "Legal",
    "Government",
    "Non-Profit",
    "Food & Beverage",
    "Consumer Goods",
    "Chemicals",
    "Mining",
    "Utilities",
    "Transportation",
    "Entertainment",
    "Gaming",
    "Sports",
    "Fashion",
    "Cosmetics",
    "Security",
    "Software",
    "Hardware",
    "E-commerce",
    "Marketing",
    "Travel",
)
_COUNTRIES = (
    ("United States", "North America"),
    ("Canada", "North America"),
    ("Mexico", "Latin America"),
    ("Brazil", "Latin America"),
    ("Argentina", "Latin America"),
    ("Chile", "Latin America"),
    ("Colombia", "Latin America"),
    ("United Kingdom", "Europe"),
    ("Germany", "Europe"),
    ("France", "Europe"),
    ("Spain", "Europe"),
    ("Italy", "Europe"),
    ("Netherlands", "Europe"),
    ("Sweden", "Europe"),
    ("Poland", "Europe"),
    ("Switzerland", "Europe"),
    ("Ireland", "Europe"),
    ("Denmark", "Europe"),
    ("Japan", "Asia Pacific"),
    ("China", "Asia Pacific"),
    ("India", "Asia Pacific"),
    ("Singapore", "Asia Pacific"),
    ("Australia", "Asia Pacific"),
    ("South Korea", "Asia Pacific"),
    ("Indonesia", "Asia Pacific"),
    ("Vietnam", "Asia Pacific"),
    ("New Zealand", "Asia Pacific"),
    ("United Arab Emirates", "Middle East"),
    ("Saudi Arabia", "Middle East"),
    ("Israel", "Middle East"),
    ("Turkey", "Middle East"),
    ("South Africa", "Africa"),
    ("Nigeria", "Africa"),
    ("Kenya", "Africa"),
    ("Egypt", "Africa"),
)
# US-heavy, as CRM exports usually are.
_COUNTRY_WEIGHTS = tuple(30 if c == "United States" else 6 if r == "Europe" else 3 for c, r in _COUNTRIES)
_STATUS = ("active", "inactive", "prospect", "churned")
_STATUS_WEIGHTS = (78, 10, 8, 4)
_CHANNELS = ("email", "phone", "portal", "in-person", "chat", "partner")
_TLDS = ("com", "com", "com", "io", "net", "co", "org", "de", "co.uk", "fr", "jp", "com.au")
_EPOCH = date(2012, 1, 1)


@dataclass(frozen=True)
class CrmFiles:
    base: Path
    changed: Path
    records: int
    seed: int
    invalid: int  # records that mapping refuses
    changed_records: int  # records whose content differs in `changed`
    bytes_base: int

    @property
    def valid(self) -> int:
        return self.records - self.invalid


def _slug(text: str) -> str:
    out = "".join(ch for ch in text.lower() if ch.isascii() and ch.isalnum())
    return out or "corp"


def _company(rng: random.Random, last: str) -> str:
    r = rng.random()
    if r < 0.02:
        base = rng.choice(_UNICODE_NAMES)
        return f"{base} {rng.choice(_NOUN)}" if rng.random() < 0.7 else base
    if r < 0.35:
        name = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)}"
    elif r < 0.60:
        name = f"{last} {rng.choice(_NOUN)}"
    elif r < 0.75:
        name = f"{last} & {rng.choice(_LAST)}"
    elif r < 0.90:
        name = f"{rng.choice(_ADJ)}{rng.choice(_NOUN).lower()}"
    else:
        name = f"{rng.choice(_ADJ)} {last} {rng.choice(_NOUN)}"
    suffix = rng.choice(_SUFFIX)
    return f"{name} {suffix}" if suffix else name


def make_record(rng: random.Random, n: int) -> dict:
    """One CRM record (the sample's 20 fields, same order). Draws a fixed pattern from `rng`."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    company = _company(rng, last)
    country, region = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
    revenue_f = rng.lognormvariate(13.8, 1.9)  # median ~1M, long tail into the billions
    cents = rng.random() < 0.12
    revenue: int | float | None = round(revenue_f, 2) if cents else int(revenue_f)
    if rng.random() < 0.01:
        revenue = None
    employees = max(1, int(revenue_f / rng.uniform(12_000, 60_000)))
    tier = "enterprise" if revenue_f > 5e6 else "business" if revenue_f > 5e5 else "startup"
    first_contact = _EPOCH + timedelta(days=rng.randrange(0, 4380))
    last_purchase = first_contact + timedelta(days=rng.randrange(0, 1800))
    orders = int(rng.expovariate(1 / 40)) + 1
    spent = int(orders * rng.uniform(200, 8000))
    created = datetime(2024, 1, 1) + timedelta(seconds=rng.randrange(0, 60 * 86400))
    email_domain = f"{_slug(company.split(' ')[0])}.{rng.choice(_TLDS)}"
    email: str | None = f"{_slug(first)}.{_slug(last)}@{email_domain}"
    if rng.random() < 0.02:
        email = None
    industry: str | None = rng.choice(_INDUSTRIES) if rng.random() > 0.01 else None
    record = {
        "customer_id": f"CUST-{n}",
        "first_name": first,
        "last_name": last,
        "email": email,
        "company_name": company,
        "industry": industry,
        "annual_revenue": revenue,
        "employee_count": employees,
        "country": country,
        "region": region,
        "status": rng.choices(_STATUS, _STATUS_WEIGHTS)[0],
        "customer_tier": tier,
        "lifetime_value": int(spent * rng.uniform(0.3, 1.5)),
        "first_contact_date": first_contact.isoformat(),
        "last_purchase_date": last_purchase.isoformat(),
        "total_orders": orders,
        "total_spent": spent,
        "preferred_channel": rng.choice(_CHANNELS),
        "sales_rep_id": f"SR-{rng.randrange(500, 800)}",
        "created_at": created.isoformat() + "Z",
    }
    if rng.random() < INVALID_SHARE:
        kind = rng.randrange(3)
        if kind == 0:
            record["annual_revenue"] = -abs(revenue or 1000)
        elif kind == 1:
            record["company_name"] = "   "
        else:
            record["employee_count"] = "about fifty"
    return record


def _meta_path(directory: Path, records: int, seed: int) -> Path:
    return directory / f"crm-{records}-seed{seed}.meta.json"


def ensure_files(directory: Path, records: int, seed: int, *, log: Callable[[str], None] = print) -> CrmFiles:
    """The base and changed files for (records, seed), generated unless already present and complete."""
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"crm-{records}-seed{seed}.json"
    changed = directory / f"crm-{records}-seed{seed}-changed10.json"
    meta_path = _meta_path(directory, records, seed)
    if meta_path.exists() and base.exists() and changed.exists():
        meta = json.loads(meta_path.read_text())
        if (
            meta.get("generator_version") == GENERATOR_VERSION
            and meta.get("bytes_base") == base.stat().st_size
            and meta.get("bytes_changed") == changed.stat().st_size
        ):
            return CrmFiles(
                base, changed, records, seed, meta["invalid"], meta["changed_records"], meta["bytes_base"]
            )
    log(f"generating {records:,} CRM records (seed {seed}) into {directory} ...")
    started = time.perf_counter()
    rng = random.Random(seed)
    invalid = changed_records = 0
    tmp_base, tmp_changed = base.with_suffix(".tmp"), changed.with_suffix(".tmp")
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with open(tmp_base, "w", encoding="utf-8") as fb, open(tmp_changed, "w", encoding="utf-8") as fc:
        fb.write('{"records": [\n')
        fc.write('{"records": [\n')
        buf_b: list[str] = []
        buf_c: list[str] = []
        n = 1_000_000
        for i in range(records):
            n += 1 + (rng.random() < 0.05)  # a few gaps, as deleted customers leave
            rec = make_record(rng, n)
            sep = ",\n" if i else ""
            line = dumps(rec)
            buf_b.append(sep + line)
            if i % CHANGE_EVERY == 0:
                rec["total_orders"] += 1
                line = dumps(rec)
                changed_records += 1
            buf_c.append(sep + line)
            if (
                not isinstance(rec["annual_revenue"], int | float | None)
                or (rec["annual_revenue"] is not None and rec["annual_revenue"] < 0)
                or not rec["company_name"].strip()
                or isinstance(rec["employee_count"], str)
            ):
                invalid += 1
            if len(buf_b) >= 10_000:
                fb.write("".join(buf_b))
                fc.write("".join(buf_c))
                buf_b.clear()
                buf_c.clear()
        fb.write("".join(buf_b) + "\n]}\n")
        fc.write("".join(buf_c) + "\n]}\n")
    os.replace(tmp_base, base)
    os.replace(tmp_changed, changed)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "records": records,
        "seed": seed,
        "invalid": invalid,
        "changed_records": changed_records,
        "bytes_base": base.stat().st_size,
        "bytes_changed": changed.stat().st_size,
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    log(
        f"  generated in {time.perf_counter() - started:.1f}s: {base.name} {meta['bytes_base'] / 1e6:.0f} MB, "
        f"{invalid} invalid records, {changed_records:,} changed in {changed.name}"
    )
    return CrmFiles(base, changed, records, seed, invalid, changed_records, meta["bytes_base"])
