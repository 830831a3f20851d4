"""Regenerate the bundled example (contracts/ and data/) for the Fiche 5 structures.

Deterministic: ``python tools/make_example.py`` rewrites the same files. Identifiers
(FINESS, dates of signature) are illustrative and marked so in each contract file.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (slug, commune, name, kind, territory, modules, period anchor, dept)
STRUCTURES = [
    (
        "aniche",
        "Aniche",
        "Maison de santé pluriprofessionnelle d'Aniche",
        "MSP",
        "Artois-Douaisis",
        ["coordination", "etp"],
        "07-01",
        "59",
    ),
    (
        "aulnoy-marly",
        "Aulnoy-lez-Valenciennes",
        "Maison de santé d'Aulnoy-lez-Valenciennes (Marly)",
        "MSP",
        "Hainaut-Cambrésis",
        ["etp"],
        "01-01",
        "59",
    ),
    ("denain", "Denain", "Maison de santé de Denain", "MSP", "Hainaut-Cambrésis", ["asalee"], "01-01", "59"),
    (
        "fruges",
        "Fruges",
        "Maison de santé pluriprofessionnelle de Fruges",
        "MSP",
        "Littoral",
        ["coordination", "etp"],
        "01-01",
        "62",
    ),
    (
        "laventie",
        "Laventie",
        "Maison de santé pluriprofessionnelle de Laventie",
        "MSP",
        "Artois-Douaisis",
        ["coordination", "etp"],
        "07-01",
        "62",
    ),
    (
        "sin-le-noble",
        "Sin-le-Noble",
        "Maison de santé de Sin-le-Noble (quartier Les Épis)",
        "MSP",
        "Artois-Douaisis",
        ["coordination", "etp"],
        "01-01",
        "59",
    ),
    (
        "steenvoorde",
        "Steenvoorde",
        "Maison de santé pluriprofessionnelle de Steenvoorde",
        "MSP",
        "Métropole-Flandre intérieure",
        ["coordination", "etp"],
        "01-01",
        "59",
    ),
    (
        "lille-moulins",
        "Lille",
        "Pôle de santé de Lille-Moulins",
        "pole",
        "Métropole-Flandre intérieure",
        ["coordination", "etp"],
        "07-01",
        "59",
    ),
    (
        "maubeuge",
        "Maubeuge",
        "Pôle de santé de Maubeuge",
        "pole",
        "Hainaut-Cambrésis",
        ["coordination", "etp"],
        "01-01",
        "59",
    ),
]


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def finess(dept: str, n: int) -> str:
    body = f"{dept}0{n:05d}"
    return body + luhn_digit(body)


def contract_id(slug: str) -> str:
    return f"ENMR-NPDC-{slug.upper()}"


def write_contract(i: int, slug, commune, name, kind, territory, modules, anchor, dept, only: set[str]) -> None:
    start = dt.date(2010, int(anchor[:2]), int(anchor[3:]))
    end = dt.date(2015, 12, 31) if "asalee" in modules else dt.date(2014, 12, 31)
    mods = [m for m in modules if m in only]
    lines = [
        f"# Contrat ENMR (art. 44 LFSS 2008) — {name}.",
        "# Structure et modules : ARS Nord-Pas-de-Calais, point presse de mai 2013, fiche 5",
        "# (shared/seeds/002_6eecaa9289eaad5a.txt). Les champs listés sous « illustrative » ne figurent",
        "# pas dans la source : ce sont des valeurs plausibles inventées pour l'exemple.",
        f"id: {contract_id(slug)}",
        "illustrative: [structure.finess, signed_on, start, end, periods.anchor, payees]",
        "structure:",
        f'  finess: "{finess(dept, 100 + i * 7)}"',
        f"  name: {name}",
        f"  kind: {kind}",
        f"  territory: {territory}",
        f"  commune: {commune}",
        "parties:",
        "  ars: ARS Nord-Pas-de-Calais",
        "  caisse: CPAM de Lille-Douai (caisse unique pour le paiement en région)",
        f"signed_on: {start - dt.timedelta(days=14)}",
        f"start: {start}",
        f"end: {end}",
        "periods:",
        f'  anchor: "{anchor}"',
        "modules:",
    ]
    for m in mods:
        m_start = dt.date(2012, 12, 1) if m == "asalee" else start
        payee = ", payee: asalee" if m == "asalee" else ""
        lines.append(f"  - {{code: {m}, start: {m_start}{payee}}}")
    lines += [
        "payees:",
        "  - id: structure",
        f"    name: {name}",
    ]
    lines += extra_contract_lines(slug, mods)
    (ROOT / "contracts" / f"{slug}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(header)
        w.writerows(rows)


def etp_data() -> None:
    rng = random.Random(2013)
    programmes, sessions, trainings, structuring = [], [], [], []
    for i, (slug, *_rest) in enumerate(STRUCTURES):
        modules = _rest[4]
        if "etp" not in modules:
            continue
        cid = contract_id(slug)
        auth_from = dt.date(2011, 9, 1) if slug != "maubeuge" else dt.date(2013, 3, 1)
        progs = [("P1", "Diabète de type 2 : vivre avec sa maladie")]
        if i % 2 == 0:
            progs.append(("P2", "Risque cardio-vasculaire et hypertension"))
        for pid, title in progs:
            programmes.append(
                [
                    cid,
                    pid,
                    title,
                    auth_from.isoformat(),
                    (auth_from.replace(year=auth_from.year + 4) - dt.timedelta(days=1)).isoformat(),
                ]
            )
        for year in (2012, 2013):
            for pid, _ in progs:
                for k in range(rng.randint(6, 14)):
                    patient = f"PAT-{slug[:3].upper()}-{year % 100}{pid}{k:03d}"
                    day = dt.date(year, rng.randint(1, 6), rng.randint(1, 28))
                    sessions.append([cid, pid, patient, day.isoformat(), "diagnostic"])
                    n = rng.choice([2, 3, 3, 4, 4, 5, 5, 6, 6, 7])
                    for _ in range(n):
                        day = day + dt.timedelta(days=rng.randint(10, 20))
                        sessions.append([cid, pid, patient, day.isoformat(), "seance"])
            for p in range(rng.randint(1, 3)):
                prof = f"RPPS-{slug[:3].upper()}-{p:02d}"
                for t in range(rng.choice([1, 2, 3])):
                    day = dt.date(year, 3 + 3 * t, 10 + p)
                    trainings.append([cid, prof, day.isoformat(), f"Formation ETP 40 h, module {t + 1}"])
        structuring.append([cid, "2012-02-15", f"Projet ETP {slug} — note de structuration"])
    base = ROOT / "data" / "etp"
    write_csv(
        base / "programmes.csv",
        ["contract_id", "programme_id", "title", "authorised_from", "authorised_to"],
        programmes,
    )
    write_csv(
        base / "sessions.csv", ["contract_id", "programme_id", "patient_id", "session_date", "kind"], sorted(sessions)
    )
    write_csv(base / "trainings.csv", ["contract_id", "professional_id", "training_date", "training_title"], trainings)
    write_csv(base / "structuring.csv", ["contract_id", "claim_date", "reference"], structuring)


# -- modules 1 (coordination) and 3 (asalee) ---------------------------------------------------------

#: MT patients per structure enrolled in module 1 (synthetic: patient counts are not public).
COORDINATION_SIZES = {
    "aniche": 1450,
    "fruges": 1180,
    "laventie": 1720,
    "sin-le-noble": 1960,
    "steenvoorde": 900,
    "lille-moulins": 2350,
    "maubeuge": 2150,
}
#: Public-health indicators (targets in %, higher is better), SEED examples of fiche 5.
INDICATORS = {"depistage_cancers": 60, "hypertension": 70, "diabete": 65, "obesite": 40}
#: Fruges shows a convention with its own indicators (weights) and an all-or-nothing scoring.
FRUGES_INDICATORS = {"depistage_cancers": 2, "diabete": 1, "hypertension": 1}


def extra_contract_lines(slug: str, modules: list[str]) -> list[str]:
    """Contract-file lines beyond the common ones: the Asalée payee, a convention's own parameters."""
    lines: list[str] = []
    if "asalee" in modules:
        lines += [
            "  - id: asalee",
            "    name: Association Asalée (Action de santé libérale en équipe), Niort",
        ]
    if slug == "fruges" and "coordination" in modules:
        rows = ", ".join(f"{{indicator: {k}, weight: {w}}}" for k, w in FRUGES_INDICATORS.items())
        lines += [
            "# Valeurs propres à la convention (illustratives : les conventions ne sont pas publiées).",
            "parameters:",
            "  coordination.objectives.indicators:",
            "    - start: 2010-01-01",
            f"      value: [{rows}]",
            '      reference: "Convention ENMR de Fruges, annexe « objectifs de santé publique » (illustratif)"',
            "      illustrative: true",
            "  coordination.objectives.scoring:",
            "    - start: 2010-01-01",
            "      value: all_or_nothing",
            '      reference: "Convention ENMR de Fruges, annexe « objectifs de santé publique » (illustratif)"',
            "      illustrative: true",
        ]
    return lines


def _day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return dt.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))


def _example_periods(anchor: str) -> list[tuple[dt.date, dt.date]]:
    month, day = int(anchor[:2]), int(anchor[3:])
    return [(dt.date(y, month, day), dt.date(y + 1, month, day) - dt.timedelta(days=1)) for y in (2012, 2013)]


def coordination_data() -> None:
    rng = random.Random(2012)
    patients, consultations, professionals, objectives = [], [], [], []
    for slug, _commune, _name, _kind, _territory, modules, anchor, _dept in STRUCTURES:
        if "coordination" not in modules:
            continue
        cid = contract_id(slug)
        code = slug[:3].upper()
        # professionals: GPs, paramedicals, others; some change their half-days in 2013
        staff = [("generaliste", 2 if slug == "steenvoorde" else rng.randint(3, 6), (8, 9, 10, 11))]
        staff += [("paramedical", rng.randint(3, 8), (6, 8, 10, 11)), ("autre", rng.randint(1, 3), (2, 4, 6))]
        gps = []
        for role, count, choices in staff:
            for k in range(count):
                pid = f"RPPS-{code}-{role[:3].upper()}{k:02d}"
                start = _day(rng, dt.date(2009, 1, 1), dt.date(2011, 12, 31))
                half_days = rng.choice(choices)
                if role == "generaliste":
                    gps.append(pid)
                if slug == "steenvoorde" and role == "generaliste" and k == 1:
                    # a GP leaves: the structure is no longer eligible in 2013
                    professionals.append([cid, pid, role, half_days, start.isoformat(), "2012-12-31"])
                elif rng.random() < 0.3:
                    change = _day(rng, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
                    professionals.append(
                        [cid, pid, role, half_days, start.isoformat(), (change - dt.timedelta(days=1)).isoformat()]
                    )
                    professionals.append([cid, pid, role, rng.choice(choices), change.isoformat(), ""])
                else:
                    professionals.append([cid, pid, role, half_days, start.isoformat(), ""])
        # patients who declared their médecin traitant, and children followed by the structure's GPs
        for k in range(COORDINATION_SIZES[slug]):
            child = rng.random() < 0.15
            birth = (
                _day(rng, dt.date(1997, 1, 1), dt.date(2008, 12, 31))
                if child
                else _day(rng, dt.date(1925, 1, 1), dt.date(1996, 12, 31))
            )
            declared = max(_day(rng, dt.date(2005, 1, 1), dt.date(2013, 9, 30)), birth + dt.timedelta(days=30))
            ended = ""
            if rng.random() < 0.08:
                ended = _day(rng, max(declared, dt.date(2011, 1, 1)), dt.date(2014, 6, 30)).isoformat()
            pid = f"{code}-{k:05d}"
            patients.append([cid, pid, birth.isoformat(), "oui" if rng.random() < 0.18 else "non", declared, ended])
            if child:
                seen = set()
                for year in (2012, 2013, 2014):
                    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
                        day = _day(rng, dt.date(year, 1, 1), dt.date(year, 6 if year == 2014 else 12, 28))
                        if day > birth:
                            seen.add((day.isoformat(), rng.choice(gps)))
                consultations += [[cid, pid, d, doc] for d, doc in sorted(seen)]
        # objectives: one result per indicator of the contract and period
        indicators = FRUGES_INDICATORS if slug == "fruges" else INDICATORS
        for start, _end in _example_periods(anchor):
            measured = dt.date(start.year + (start.month + 10) // 12, (start.month + 10) % 12 + 1, 1)
            for indicator in indicators:
                if slug == "maubeuge" and start.year == 2013 and indicator == "obesite":
                    continue  # not reported: scored 0
                target = INDICATORS[indicator]
                achieved = f"{target + rng.randint(-15, 6)},{rng.randint(0, 9)}"
                objectives.append([cid, indicator, measured.isoformat(), achieved, str(target), str(target - 20)])
    base = ROOT / "data" / "coordination"
    write_csv(
        base / "patients.csv",
        ["contract_id", "patient_id", "birth_date", "ald", "declared_on", "ended_on"],
        [[c, p, b, a, d.isoformat(), e] for c, p, b, a, d, e in patients],
    )
    write_csv(
        base / "child_consultations.csv", ["contract_id", "patient_id", "consultation_date", "doctor_id"], consultations
    )
    write_csv(
        base / "professionals.csv",
        ["contract_id", "professional_id", "role", "half_days_per_week", "present_from", "present_to"],
        professionals,
    )
    write_csv(
        base / "objectives.csv", ["contract_id", "indicator", "measured_on", "achieved", "target", "floor"], objectives
    )


def asalee_data() -> None:
    """Denain (module 3 from December 2012): one Asalée nurse working with five GPs."""
    rng = random.Random(2013)
    cid = contract_id("denain")
    staff = [
        [cid, "INF-DEN-01", "infirmier", "0.8", "2012-12-01", "2013-06-30"],
        [cid, "INF-DEN-01", "infirmier", "1", "2013-07-01", ""],
    ]
    doctors = [f"MED-DEN-{k:02d}" for k in range(1, 6)]
    staff += [[cid, d, "medecin", "0.9", "2008-01-01", ""] for d in doctors]
    acts = {
        "suivi_diabete_type2": 120,
        "suivi_risque_cardiovasculaire": 90,
        "spirometrie_bpco_tabagique": 45,
        "depistage_troubles_cognitifs": 35,
    }
    followed = set()
    k = 0
    for act, count in acts.items():
        for _ in range(count):
            k += 1
            first = _day(rng, dt.date(2012, 12, 1), dt.date(2013, 12, 31))
            for _ in range(rng.randint(1, 4)):
                day = min(first + dt.timedelta(days=rng.randint(0, 300)), dt.date(2013, 12, 31))
                followed.add((cid, f"DEN-{k:04d}", act, day.isoformat()))
    concertation = []
    for doctor in doctors:
        month = dt.date(2012, 12, 1)
        while month <= dt.date(2013, 12, 1):
            day = month + dt.timedelta(days=rng.randint(0, 20))
            concertation.append([cid, doctor, day.isoformat(), rng.choice([30, 45, 60, 90])])
            month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    base = ROOT / "data" / "asalee"
    write_csv(base / "staff.csv", ["contract_id", "person_id", "role", "fte", "present_from", "present_to"], staff)
    write_csv(base / "followed_patients.csv", ["contract_id", "patient_id", "act", "followed_on"], sorted(followed))
    write_csv(base / "concertation.csv", ["contract_id", "doctor_id", "session_date", "minutes"], concertation)


if __name__ == "__main__":
    import sys

    only = set(sys.argv[1:]) or {"coordination", "etp", "asalee"}
    for i, s in enumerate(STRUCTURES):
        if any(m in only for m in s[5]):
            write_contract(i, *s, only=only)
    etp_data()
    coordination_data()
    asalee_data()
