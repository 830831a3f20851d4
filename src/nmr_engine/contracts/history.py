"""Contract histories: amendments, suspensions, resumptions and termination, as dated events.

The contract file states the contract **as signed** (known from ``recorded_on``, by default
``signed_on``). What happened to it afterwards is appended under ``history:``, one entry per
event, **in the order the events were recorded** (``recorded_on`` never decreases)::

    history:
      - date: 2012-01-01            # date of effect: the first day the change applies
        recorded_on: 2011-12-10     # when the engine learned it (default: date)
        event: amendment            # amendment | suspension | resumption | termination
        reference: Avenant n° 1 du 10/12/2011
        add_modules:                # modules subscribed from a date
          - {code: coordination, start: 2012-01-01, end: 2014-12-31, payee: association}
        end_modules: [etp]          # modules no longer active from `date` (last day: the day before)
        parameters:                 # the convention's values, from `date` (optionally to `end`)
          etp.training.amount: {value: "1200.00", end: 2013-12-31, confidence: CONTRACT}
        payees:                     # a new payee, or new details (bank) of a payee, from `date`
          - {id: structure, iban: FR76..., bic: ...}
      - date: 2013-04-01
        recorded_on: 2013-09-15     # recorded after the fact: a retroactive suspension
        event: suspension
        until: 2013-06-30           # last suspended day; without it, until a resumption or the end
        reference: Décision ARS du 12/09/2013
      - date: 2014-01-01            # termination: the contract no longer runs from `date`
        recorded_on: 2013-11-15     # (its last day is 31/12/2013)
        event: termination
        reference: Lettre de résiliation du 15/11/2013

**As known on a date.** :func:`contract_as_of` (and ``Workspace(known_on=D)``) builds the
contract from the signature and the events recorded on or before D: "what the engine knew on
D". Each period is then computed with the contract as it stands: module enrolment spans as
added or ended, parameter values from their dates, payee details from their dates.

**Suspension.** A suspension pays nothing for its days: the enrolment spans keep their bounds
but the suspended days are taken out of each module period's ``active_days`` (and counted in
``suspended_days``), so a pro-rata forfait loses them; activity records dated inside a
suspension (or after a termination, within the signed span) are set aside by the core before
any plugin sees them, and the run says so in its warnings with the file and lines.
**Termination** ends the contract span (and every enrolment) the day before its date: later
periods no longer exist.

Every problem is reported with the file, line and field, like the rest of the contract.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ..errors import InputError, Problem
from ..model import Contract, ContractEvent, Enrolment, Payee
from ..parameters.model import ParameterStore, ParameterVersion
from ..periods import DateRange, anchored_periods
from ..yamlfile import LocatedDict, LocatedList, load_yaml
from .loader import module_entry, override_version

EVENT_KINDS = ("amendment", "suspension", "resumption", "termination")
EVENT_WORDS = {
    "amendment": "avenant",
    "suspension": "suspension",
    "resumption": "reprise",
    "termination": "résiliation",
}
_COMMON = {"date", "recorded_on", "event", "reference", "note"}
_ALLOWED = {
    "amendment": _COMMON | {"add_modules", "end_modules", "parameters", "payees"},
    "suspension": _COMMON | {"until"},
    "resumption": _COMMON,
    "termination": _COMMON,
}
ONE_DAY = dt.timedelta(days=1)


@attrs.frozen
class HistoryEvent:
    """One validated ``history`` entry (syntax checked; applied by :func:`apply_history`)."""

    index: int
    line: int
    date: dt.date
    recorded_on: dt.date
    kind: str
    reference: str
    until: dt.date | None = None
    add_modules: tuple[tuple[str, dt.date | None, dt.date | None, str, int], ...] = ()  # code, start, end, payee, line
    end_modules: tuple[tuple[str, int], ...] = ()  # code, line
    parameters: tuple[ParameterVersion, ...] = ()
    payees: tuple[tuple[str, dict, int], ...] = ()  # id, given fields, line
    note: str = ""

    @property
    def field(self) -> str:
        return f"history[{self.index}]"


def parse_history(
    check,
    data: LocatedDict,
    file: str,
    contract_id: str | None,
    known_modules: set[str] | None,
    store: ParameterStore | None,
    recorded_on: dt.date | None,
) -> list[HistoryEvent]:
    """Check the ``history`` list of a contract file (types, fields, order of recording)."""
    raw = data.get("history")
    if raw is None:
        return []
    if not isinstance(raw, LocatedList):
        check.bad(data, "history", "history", "liste d'événements datés attendue")
        return []
    events: list[HistoryEvent] = []
    last_recorded = recorded_on
    for i, entry in enumerate(raw):
        field = f"history[{i}]"
        if not isinstance(entry, LocatedDict):
            check.bad(raw, i, field, "événement attendu (date, recorded_on, event, reference…)")
            continue
        before = len(check.problems)
        kind = check.text(entry, "event", f"{field}.event")
        if kind is not None and kind not in EVENT_KINDS:
            check.bad(
                entry, "event", f"{field}.event", f"événement attendu parmi {', '.join(EVENT_KINDS)}, reçu {kind!r}"
            )
            kind = None
        if kind is not None:
            for key in entry:
                if key not in _ALLOWED[kind]:
                    check.bad(
                        entry,
                        key,
                        f"{field}.{key}",
                        f"champ inconnu pour un événement « {kind} » ; "
                        f"champs admis : {', '.join(sorted(_ALLOWED[kind]))}",
                    )
        date = check.date(entry, "date", f"{field}.date")
        recorded = check.date(entry, "recorded_on", f"{field}.recorded_on", required=False) or date
        reference = check.text(entry, "reference", f"{field}.reference")
        if recorded is not None:
            if recorded_on is not None and recorded < recorded_on:
                check.bad(
                    entry,
                    "recorded_on" if "recorded_on" in entry else "date",
                    f"{field}.recorded_on",
                    f"événement enregistré le {recorded:%d/%m/%Y}, avant le contrat lui-même ({recorded_on:%d/%m/%Y})",
                )
            elif last_recorded is not None and recorded < last_recorded:
                check.bad(
                    entry,
                    "recorded_on" if "recorded_on" in entry else "date",
                    f"{field}.recorded_on",
                    f"les événements se suivent dans l'ordre de leur enregistrement : {recorded:%d/%m/%Y} "
                    f"précède l'enregistrement de l'événement précédent ({last_recorded:%d/%m/%Y})",
                )
            else:
                last_recorded = recorded
        until = None
        if kind == "suspension":
            until = check.date(entry, "until", f"{field}.until", required=False)
            if until is not None and date is not None and until < date:
                check.bad(entry, "until", f"{field}.until", "la fin de la suspension précède son début")
        add, end, params, payees = (), (), (), ()
        if kind == "amendment":
            add = _add_modules(check, entry, field, known_modules, date)
            end = _end_modules(check, entry, field)
            params = _parameters(check, entry, field, store, contract_id, date, reference, file)
            payees = _payees(check, entry, field)
            if not any(k in entry for k in ("add_modules", "end_modules", "parameters", "payees")):
                check.bad(
                    entry,
                    "event",
                    field,
                    "un avenant doit modifier au moins une chose : add_modules, end_modules, parameters ou payees",
                )
        if len(check.problems) == before and kind and date and recorded and reference:
            events.append(
                HistoryEvent(
                    index=i,
                    line=entry.line,
                    date=date,
                    recorded_on=recorded,
                    kind=kind,
                    reference=reference,
                    until=until,
                    add_modules=add,
                    end_modules=end,
                    parameters=params,
                    payees=payees,
                    note=str(entry.get("note") or ""),
                )
            )
    return events


def _add_modules(check, entry: LocatedDict, field: str, known: set[str] | None, date) -> tuple:
    items = entry.get("add_modules")
    if items is None:
        return ()
    if not isinstance(items, LocatedList) or not items:
        check.bad(entry, "add_modules", f"{field}.add_modules", "liste de modules attendue ({code, start, end, payee})")
        return ()
    out = []
    for j, m in enumerate(items):
        mfield = f"{field}.add_modules[{j}]"
        if not isinstance(m, LocatedDict):
            check.bad(items, j, mfield, "module attendu ({code, start, end, payee})")
            continue
        code, start, end, payee = module_entry(check, m, mfield, known)
        if code:
            out.append((code, start, end, payee, m.line))
    return tuple(out)


def _end_modules(check, entry: LocatedDict, field: str) -> tuple:
    items = entry.get("end_modules")
    if items is None:
        return ()
    if not isinstance(items, LocatedList) or not items:
        check.bad(entry, "end_modules", f"{field}.end_modules", "liste de codes de modules attendue")
        return ()
    out = []
    for j, code in enumerate(items):
        if not isinstance(code, str) or not code.strip():
            check.bad(items, j, f"{field}.end_modules[{j}]", "code de module attendu")
            continue
        out.append((code, items.item_lines[j]))
    return tuple(out)


def _parameters(check, entry, field, store, contract_id, date, reference, file) -> tuple:
    section = entry.get("parameters")
    if section is None:
        return ()
    if not isinstance(section, LocatedDict) or not section:
        check.bad(entry, "parameters", f"{field}.parameters", "dictionnaire « paramètre: {value, end…} » attendu")
        return ()
    out = []
    for name, spec in section.items():
        pfield = f"{field}.parameters.{name}"
        if store is not None and name not in store:
            check.bad(section, name, pfield, "paramètre inconnu des modules installés")
            continue
        if not isinstance(spec, LocatedDict) or "value" not in spec:
            check.bad(section, name, pfield, "attendu {value: ..., end: ..., confidence: ..., reference: ...}")
            continue
        for key in spec:
            if key not in ("value", "end", "confidence", "reference", "illustrative"):
                check.bad(
                    spec, key, f"{pfield}.{key}", "champ inconnu (value, end, confidence, reference, illustrative)"
                )
        end = check.date(spec, "end", f"{pfield}.end", required=False)
        if end and date and end < date:
            check.bad(spec, "end", f"{pfield}.end", "la fin de la valeur précède la date d'effet de l'avenant")
            continue
        ref = str(spec.get("reference") or reference or "")
        version = override_version(check, spec, pfield, name, date, end, ref, store, contract_id, file)
        if version is not None:
            out.append(version)
    return tuple(out)


def _payees(check, entry, field) -> tuple:
    items = entry.get("payees")
    if items is None:
        return ()
    if not isinstance(items, LocatedList) or not items:
        check.bad(entry, "payees", f"{field}.payees", "liste de bénéficiaires attendue ({id, name, iban, bic})")
        return ()
    out = []
    for j, p in enumerate(items):
        pfield = f"{field}.payees[{j}]"
        if not isinstance(p, LocatedDict):
            check.bad(items, j, pfield, "bénéficiaire attendu ({id, name, iban, bic})")
            continue
        pid = check.text(p, "id", f"{pfield}.id")
        for key in p:
            if key not in ("id", "name", "iban", "bic"):
                check.bad(p, key, f"{pfield}.{key}", "champ inconnu (id, name, iban, bic)")
        given = {k: str(p[k]) for k in ("name", "iban", "bic") if p.get(k) is not None}
        if pid and not given:
            check.bad(p, "id", pfield, "rien à changer : name, iban ou bic attendu")
            continue
        if pid:
            out.append((pid, given, p.line))
    return tuple(out)


class _Raise:
    """A checker that raises at the first problem (used when the history was already validated)."""

    def __init__(self, file: str):
        self.file = file

    def problem(self, line: int, field: str, message: str) -> None:
        raise InputError([Problem(self.file, message, line, field)])


class _Collect:
    def __init__(self, check):
        self.check = check

    def problem(self, line: int, field: str, message: str) -> None:
        self.check.problems.append(Problem(self.check.file, message, line, field))


def apply_history(
    contract: Contract,
    overrides: list[ParameterVersion],
    events: list[HistoryEvent],
    known_on: dt.date | None = None,
    check=None,
) -> tuple[Contract, list[ParameterVersion]]:
    """The contract and its parameter overrides after the events recorded on or before
    ``known_on`` (all when None), applied in the order they were recorded.

    With ``check`` (a loader checker), problems are collected with their file, line and field;
    without, the first one raises :class:`InputError`."""
    sink = _Collect(check) if check is not None else _Raise(contract.source)
    span = contract.span
    enrolments = list(contract.enrolments)
    payees = {p.id: p for p in contract.payees}
    payee_changes: list[tuple[dt.date, Payee]] = []
    suspensions: list[list] = []  # [start, end or None, line]
    overrides = list(overrides)
    applied: list[ContractEvent] = []
    terminated_on = None
    for ev in events:
        if known_on is not None and ev.recorded_on > known_on:
            break  # recorded later: the engine did not know it yet (the list is in recording order)
        words: list[str] = []
        f = ev.field
        if ev.kind == "termination" and terminated_on is not None:
            sink.problem(ev.line, f"{f}.event", f"contrat déjà résilié à compter du {terminated_on:%d/%m/%Y}")
            continue
        if not (span.start <= ev.date <= span.end):
            after = f", résilié à compter du {terminated_on:%d/%m/%Y}" if terminated_on else ""
            sink.problem(
                ev.line, f"{f}.date", f"date d'effet {ev.date:%d/%m/%Y} hors de la durée du contrat ({span}{after})"
            )
            continue
        if ev.kind == "amendment":
            for pid, given, line in ev.payees:
                old = _payee_on(payees, payee_changes, pid, ev.date)
                if old is None and "name" not in given:
                    sink.problem(
                        line, f"{f}.payees", f"nouveau bénéficiaire « {pid} » : son nom (name) est obligatoire"
                    )
                    continue
                new = (
                    attrs.evolve(old, **given)
                    if old is not None
                    else Payee(pid, given["name"], given.get("iban"), given.get("bic"))
                )
                if old is None:
                    payees[pid] = new
                payee_changes.append((ev.date, new))
                words.append(f"bénéficiaire « {pid} » {'modifié' if old else 'ajouté'} ({_payee_text(new)})")
            for code, start, end, payee, line in ev.add_modules:
                start = start or ev.date
                end = end or span.end
                if not (span.start <= start and end <= span.end) or end < start:
                    sink.problem(line, f"{f}.add_modules", f"le module doit rester dans la durée du contrat ({span})")
                    continue
                new_span = DateRange(start, end)
                clash = next((e for e in enrolments if e.module == code and e.span.overlaps(new_span)), None)
                if clash is not None:
                    sink.problem(line, f"{f}.add_modules", f"module « {code} » déjà souscrit {clash.span}")
                    continue
                # One enrolment of a module per contract period (a period has one row per module).
                shared = next(
                    (
                        p
                        for e in enrolments
                        if e.module == code
                        for p in anchored_periods(contract.span, *contract.anchor)
                        if p.overlaps(e.span) and p.overlaps(new_span)
                    ),
                    None,
                )
                if shared is not None:
                    sink.problem(
                        line,
                        f"{f}.add_modules",
                        f"module « {code} » déjà souscrit dans la période {shared} : une seule souscription "
                        "d'un module par période de contrat",
                    )
                    continue
                if payee not in payees:
                    sink.problem(line, f"{f}.add_modules", f"bénéficiaire « {payee} » inconnu du contrat")
                    continue
                enrolments.append(Enrolment(code, new_span, payee))
                words.append(f"module « {code} » ajouté {new_span}")
            for code, line in ev.end_modules:
                hit = [e for e in enrolments if e.module == code and e.span.end >= ev.date]
                if not hit:
                    sink.problem(line, f"{f}.end_modules", f"module « {code} » non souscrit au {ev.date:%d/%m/%Y}")
                    continue
                enrolments = _clip_enrolments(enrolments, ev.date - ONE_DAY, only=code)
                words.append(f"module « {code} » arrêté à compter du {ev.date:%d/%m/%Y}")
            for version in ev.parameters:
                overrides.append(version)
                until = f" au {version.end:%d/%m/%Y}" if version.end else ""
                words.append(f"paramètre {version.name} = {version.display_value()} du {ev.date:%d/%m/%Y}{until}")
        elif ev.kind == "suspension":
            end = ev.until
            if end is not None and end > span.end:
                sink.problem(ev.line, f"{f}.until", f"la suspension dépasse la fin du contrat ({span})")
                continue
            new = DateRange(ev.date, end or span.end)
            if any(DateRange(s[0], s[1] or span.end).overlaps(new) for s in suspensions):
                sink.problem(ev.line, f"{f}.date", "chevauche une autre suspension du contrat")
                continue
            suspensions.append([ev.date, end, ev.line])
            words.append(f"suspension du {ev.date:%d/%m/%Y}" + (f" au {end:%d/%m/%Y}" if end else " jusqu'à reprise"))
        elif ev.kind == "resumption":
            open_ = [s for s in suspensions if s[1] is None and s[0] < ev.date]
            if not open_:
                sink.problem(ev.line, f"{f}.event", f"aucune suspension en cours à reprendre le {ev.date:%d/%m/%Y}")
                continue
            open_[-1][1] = ev.date - ONE_DAY
            words.append(f"reprise à compter du {ev.date:%d/%m/%Y} (suspension du {open_[-1][0]:%d/%m/%Y})")
        elif ev.kind == "termination":
            if ev.date <= span.start:
                sink.problem(ev.line, f"{f}.date", "la résiliation doit prendre effet après le début du contrat")
                continue
            terminated_on = ev.date
            span = DateRange(span.start, ev.date - ONE_DAY)
            enrolments = _clip_enrolments(enrolments, span.end)
            words.append(
                f"contrat résilié à compter du {ev.date:%d/%m/%Y} (dernier jour couvert : {span.end:%d/%m/%Y})"
            )
        if not words:
            continue
        applied.append(
            ContractEvent(
                date=ev.date,
                recorded_on=ev.recorded_on,
                kind=ev.kind,
                reference=ev.reference,
                description=f"{EVENT_WORDS[ev.kind]} : " + " ; ".join(words),
                source=f"{contract.source}:{ev.line}",
            )
        )
    spans = []
    for start, end, _ in suspensions:
        end = min(end or span.end, span.end)
        if start <= end:
            spans.append(DateRange(start, end))
    result = attrs.evolve(
        contract,
        span=span,
        enrolments=tuple(enrolments),
        payees=tuple(payees.values()),
        suspensions=tuple(sorted(spans)),
        terminated_on=terminated_on,
        payee_changes=tuple(sorted(payee_changes, key=lambda c: c[0])),
        events=tuple(applied),
        known_on=known_on,
        signed_end=contract.signed_end or contract.span.end,
    )
    return result, overrides


def _clip_enrolments(enrolments: list[Enrolment], last_day: dt.date, only: str | None = None) -> list[Enrolment]:
    out = []
    for e in enrolments:
        if only is not None and e.module != only:
            out.append(e)
        elif e.span.start > last_day:
            continue
        elif e.span.end > last_day:
            out.append(attrs.evolve(e, span=DateRange(e.span.start, last_day)))
        else:
            out.append(e)
    return out


def _payee_on(payees: dict[str, Payee], changes: list[tuple[dt.date, Payee]], pid: str, day: dt.date) -> Payee | None:
    found = payees.get(pid)
    for start, payee in sorted(changes, key=lambda c: c[0]):
        if payee.id == pid and start <= day:
            found = payee
    return found


def _payee_text(p: Payee) -> str:
    bits = [p.name]
    if p.iban:
        bits.append(f"IBAN {p.iban}")
    if p.bic:
        bits.append(f"BIC {p.bic}")
    return ", ".join(bits)


def contract_as_of(
    data: Any,
    known_on: dt.date | None,
    *,
    file: str = "<contrat>",
    known_modules=None,
    parameters: ParameterStore | None = None,
) -> tuple[Contract, list[ParameterVersion]] | None:
    """The contract of ``data`` (a contract file read with :func:`nmr_engine.yamlfile.load_yaml`)
    as the engine knew it on ``known_on``: the signed contract plus the history events recorded
    on or before that day. None when the contract itself was recorded later. The whole history
    is validated either way (a bad later event is still an error)."""
    from .loader import parse_contract

    return parse_contract(data, file, known_modules, parameters, known_on)


def load_contract_as_of(path, known_on: dt.date | None, known_modules=None, parameters=None):
    """:func:`contract_as_of` on a file."""
    return contract_as_of(load_yaml(path), known_on, file=str(path), known_modules=known_modules, parameters=parameters)
