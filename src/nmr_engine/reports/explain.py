"""``nmr explain``: an amount's derivation, in French words a payment officer and an auditor read.

:func:`render_explanation` takes plain data — a line record (as :func:`.lines.lines_to_records`
gives it, or a ledger entry with the same keys) and an explanation dict
(:meth:`Explanation.to_dict`, possibly read back from JSON) — so the same text serves a line
just calculated and an entry posted long ago. It says:

- which line: contract, module, period, component, payee, instalment, amount;
- the inputs counted, with how many records and which file lines;
- each parameter with its value, its dates of effect, its origin (module scale or the contract's
  own convention/amendment), its documentary source and its confidence level;
- the formula, the rounding applied and the engine's one rounding rule;
- for a line that pays nothing, why; the weak (LOW/OPEN, illustrative) values it relies on;
- the contract's history events taken into account and the earlier entries it corrects.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..money import ROUNDING_RULE, format_eur

#: What each confidence level means (RULES.md), in the words of a statement.
CONFIDENCE_WORDS = {
    "SEED": "énoncée dans les documents sources",
    "HIGH": "établie par une source officielle ou deux sources concordantes",
    "MED": "tirée d'une seule source secondaire",
    "LOW": "déduite des sources, non confirmée",
    "OPEN": "non trouvée dans les sources : valeur par défaut à fixer par la convention",
    "CONTRACT": "fixée par la convention signée ou son avenant",
}
WEAK = ("LOW", "OPEN")

INSTALMENT_WORDS = {"unique": "paiement unique", "avance": "avance", "solde": "solde"}
KIND_WORDS = {"advance": "avance", "balance": "solde", "regularisation": "régularisation"}

ROUNDING_POLICY = (
    f"{ROUNDING_RULE}, une seule fois par ligne de paiement ; quand une ligne est versée en plusieurs "
    "échéances, chacune sauf la dernière est arrondie ainsi et la dernière reçoit le reste, de sorte que "
    "les échéances totalisent exactement la ligne"
)

_INPUT = re.compile(r"^(?P<count>\d+) \((?P<file>.*), ligne\(s\) (?P<lines>[^()]*)\)$")


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if hasattr(value, "date") and callable(value.date):  # pandas Timestamp
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def _fr(value: Any) -> str:
    day = _date(value)
    return f"{day:%d/%m/%Y}" if day else "?"


def _period_words(period_id: str) -> str:
    if "/" in str(period_id):
        start, end = str(period_id).split("/", 1)
        return f"du {_fr(start)} au {_fr(end)}"
    return str(period_id)


def describe_input(label: str, value: str) -> str:
    """'patient(s) retenus : 13 enregistrement(s) — data/etp/sessions.csv, ligne(s) 2, 5…'"""
    m = _INPUT.match(str(value))
    if not m:
        return f"{label} : {value}"
    lines = m["lines"]
    abridged = " (liste abrégée)" if lines.endswith("…") else ""
    return f"{label} : {m['count']} enregistrement(s) — {m['file']}, ligne(s) {lines}{abridged}"


def describe_parameter(p: Mapping[str, Any]) -> list[str]:
    """The lines saying one parameter version: value, dates, origin, source, confidence."""
    start, end = _date(p.get("start")), _date(p.get("end"))
    when = f"en vigueur à compter du {start:%d/%m/%Y}" if start else "date d'effet inconnue"
    if end:
        when = f"en vigueur du {start:%d/%m/%Y} au {end:%d/%m/%Y}"
    contract = p.get("contract_id") or (str(p.get("id", "")).split("#", 1)[1] if "#" in str(p.get("id", "")) else None)
    origin = (
        f"valeur propre au contrat {contract} (convention ou avenant)"
        if contract
        else "barème du module (fichier de paramètres daté)"
    )
    confidence = str(p.get("confidence", "?"))
    out = [
        f"- {p.get('name', '?')} = {p.get('value', '?')}",
        f"    {when} (date d'effet : {_fr(start)})",
        f"    origine : {origin} — {p.get('source', '?')}",
        f"    source documentaire : {p.get('reference', '?')}",
        f"    fiabilité : {confidence} — {CONFIDENCE_WORDS.get(confidence, 'niveau inconnu')}",
    ]
    if p.get("illustrative"):
        out.append("    valeur illustrative : inventée pour l'exemple, absente des sources")
    return out


def render_explanation(
    line: Mapping[str, Any],
    explanation: Mapping[str, Any],
    *,
    corrects: Sequence[Mapping[str, Any]] | None = None,
    contract_events: Sequence[Mapping[str, Any]] = (),
    payee: Mapping[str, Any] | None = None,
    known_on: dt.date | str | None = None,
) -> str:
    """The full derivation of one line or ledger entry, as French text.

    ``line``: contract_id, module, period_id, component, label, payee_id, instalment, due_date,
    amount_cents, optionally quantity and unit_amount_cents (a ledger entry may add
    ``entry_id``/``id``, ``run_id``, ``kind``, ``posted_on`` or ``business_date``).
    ``explanation``: :meth:`Explanation.to_dict`. ``corrects``: earlier entries this one
    corrects (each an entry id, or a mapping with entry_id/id, posted_on/business_date,
    amount_cents, reason); None when the line is not in a ledger (a preview).
    ``contract_events``: the contract's history events taken into account (date, recorded_on,
    kind, reference, description, source). ``payee``: the payee's details in force on the due
    date (id, name, iban, bic)."""
    amount = int(line["amount_cents"])
    entry_id = line.get("entry_id") or line.get("id")
    out: list[str] = []
    if entry_id:
        head = f"Écriture {entry_id}"
        if line.get("kind"):
            head += f" — {KIND_WORDS.get(line['kind'], line['kind'])}"
        posted = line.get("posted_on") or line.get("business_date")
        if line.get("run_id"):
            head += f" (exécution {line['run_id']}"
            head += f", comptabilisée le {_fr(posted)})" if posted else ")"
        out.append(head)
    else:
        out.append("Ligne calculée (aperçu : non comptabilisée)")
    if known_on:
        out.append(f"  Selon ce que le moteur savait le {_fr(known_on)}")
    out.append(
        f"  Contrat {line['contract_id']} — module {line['module']} — période {_period_words(line['period_id'])}"
    )
    out.append(f"  Composante : {line.get('label', '')} ({line['component']})")
    payee_text = str(line.get("payee_id", ""))
    if payee:
        bits = [str(payee.get("name", ""))]
        if payee.get("iban"):
            bits.append(f"IBAN {payee['iban']}")
        if payee.get("bic"):
            bits.append(f"BIC {payee['bic']}")
        payee_text += f" — {', '.join(b for b in bits if b)} (coordonnées en vigueur à l'échéance)"
    out.append(f"  Bénéficiaire : {payee_text}")
    instalment = str(line.get("instalment", "unique"))
    out.append(f"  Échéance : {INSTALMENT_WORDS.get(instalment, instalment)} au {_fr(line.get('due_date'))}")
    unit = line.get("unit_amount_cents")
    detail = []
    if line.get("quantity") is not None:
        detail.append(f"quantité {int(line['quantity'])}")
    if unit is not None and unit == unit:  # (NaN-safe)
        detail.append(f"montant unitaire {format_eur(int(unit))}")
    out.append(f"  Montant : {format_eur(amount)}" + (f" ({', '.join(detail)})" if detail else ""))

    out += ["", f"Objet : {explanation.get('summary', '')}"]
    if explanation.get("reason"):
        word = "Pourquoi rien n'est dû" if amount == 0 else "Motif"
        out.append(f"{word} : {explanation['reason']}")

    out += ["", "Données prises en compte :"]
    inputs = explanation.get("inputs") or []
    out += [f"  - {describe_input(label, value)}" for label, value in inputs] or ["  (aucune donnée d'activité)"]

    out += ["", "Paramètres appliqués :"]
    params = explanation.get("parameters") or []
    for p in params:
        out += [f"  {x}" for x in describe_parameter(p)]
    if not params:
        out.append("  (aucun)")

    out += ["", f"Formule : {explanation.get('formula', '')}"]
    rounding = explanation.get("rounding")
    out.append(f"Arrondi appliqué : {rounding}" if rounding else "Arrondi appliqué : aucun pour cette ligne")
    out.append(f"Règle d'arrondi du moteur : {ROUNDING_POLICY}.")

    weak = [p for p in params if p.get("confidence") in WEAK or p.get("illustrative")]
    warnings = list(explanation.get("warnings") or [])
    if weak or warnings:
        out += ["", "Points d'attention :"]
        if weak:
            out.append(
                "  - ce montant repose sur des valeurs par défaut non confirmées ou illustratives : "
                + ", ".join(f"{p.get('name')} ({p.get('confidence')})" for p in weak)
            )
        out += [f"  - {w}" for w in warnings]

    if contract_events:
        out += ["", "Historique du contrat pris en compte :"]
        for ev in contract_events:
            out.append(
                f"  - {ev.get('description', ev.get('kind', ''))} — date d'effet {_fr(ev.get('date'))}, "
                f"enregistré le {_fr(ev.get('recorded_on'))} — {ev.get('reference', '')} ({ev.get('source', '')})"
            )

    out.append("")
    if corrects is None:
        out.append("Écritures antérieures corrigées : sans objet (ligne non comptabilisée)")
    elif not corrects:
        out.append("Écritures antérieures corrigées : aucune")
    else:
        out.append("Écritures antérieures corrigées :")
        for entry in corrects:
            if isinstance(entry, str):
                out.append(f"  - écriture {entry}")
                continue
            posted = entry.get("posted_on") or entry.get("business_date")
            text = f"  - écriture {entry.get('entry_id') or entry.get('id')}" + (f" du {_fr(posted)}" if posted else "")
            if entry.get("amount_cents") is not None:
                before = int(entry["amount_cents"])
                text += f" : {format_eur(before)} ; écart {format_eur(amount - before)}"
            if entry.get("reason"):
                text += f" ({entry['reason']})"
            out.append(text)
    return "\n".join(out)


def event_records(contract, period_end: dt.date | None = None) -> list[dict[str, Any]]:
    """A contract's applied history events (effective on or before ``period_end``) as dicts."""
    return [
        {
            "date": ev.date.isoformat(),
            "recorded_on": ev.recorded_on.isoformat(),
            "kind": ev.kind,
            "reference": ev.reference,
            "description": ev.description,
            "source": ev.source,
        }
        for ev in contract.events
        if period_end is None or ev.date <= period_end
    ]
