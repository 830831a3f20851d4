"""Load and validate contract files.

Format (one file per contract, ``contracts/*.yaml``)::

    id: ENMR-NPDC-ANICHE
    illustrative: [structure.finess, signed_on]   # fields invented for the example
    structure: {finess: "590000000", name: ..., kind: MSP, territory: ..., commune: ...}
    parties: {ars: ARS Nord-Pas-de-Calais, caisse: CPAM de Lille-Douai}
    signed_on: 2010-06-30
    start: 2010-07-01
    end: 2014-12-31
    periods: {anchor: "07-01"}        # periods run 1 July -> 30 June (default: the start's day)
    modules:
      - {code: etp, start: 2010-07-01, end: 2014-12-31, payee: structure}
    recorded_on: 2010-07-02            # when the engine learned it (default: signed_on)
    payees:
      - {id: structure, name: ..., iban: ..., bic: ...}
    parameters:                        # the convention's own amounts
      etp.training.amount:
        - {start: 2013-01-01, end: 2013-12-31, value: "1200.00", reference: "Convention, art. 3"}
    history: [...]                     # amendments, suspensions, termination: see history.py

Every problem is reported with the file, line and field, all at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import processes
from ..errors import InputError, Problem
from ..model import STRUCTURE_KINDS, Contract, Enrolment, Payee, Structure
from ..parameters.loader import parse_value
from ..parameters.model import CONFIDENCE_LEVELS, ParameterStore, ParameterVersion, Reference
from ..periods import DateRange
from ..yamlfile import LocatedDict, LocatedList, load_yaml


class _Checker:
    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def bad(self, node: Any, key: str | int | None, field: str, message: str) -> None:
        line = None
        if isinstance(node, LocatedDict):
            line = node.line_of(key) if key is not None else node.line
        elif isinstance(node, LocatedList):
            line = node.item_lines[key] if isinstance(key, int) and key < len(node.item_lines) else node.line
        self.problems.append(Problem(self.file, message, line, field))

    def text(self, node: LocatedDict, key: str, field: str, required: bool = True) -> str | None:
        value = node.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.bad(node, key if key in node else None, field, "champ obligatoire manquant (texte attendu)")
            return None
        if isinstance(value, (dict, list)):
            self.bad(node, key, field, "texte attendu")
            return None
        return str(value)

    def date(self, node: LocatedDict, key: str, field: str, required: bool = True) -> dt.date | None:
        value = node.get(key)
        if value is None:
            if required:
                self.bad(node, None, field, "champ obligatoire manquant (date AAAA-MM-JJ attendue)")
            return None
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.bad(node, key, field, f"date attendue au format AAAA-MM-JJ, reçu {value!r}")
            return None

    def mapping(self, node: LocatedDict, key: str, field: str) -> LocatedDict | None:
        value = node.get(key)
        if not isinstance(value, LocatedDict):
            self.bad(node, key if key in node else None, field, "section attendue (dictionnaire)")
            return None
        return value


def load_contract_file(
    path: Path,
    known_modules: Iterable[str] | None = None,
    parameters: ParameterStore | None = None,
    known_on: dt.date | None = None,
) -> tuple[Contract, list[ParameterVersion]]:
    """Load one contract file; returns the contract and its parameter overrides.

    With ``known_on``, the contract as the engine knew it that day: only the ``history``
    events recorded on or before it are applied (see :mod:`.history`). Raises
    :class:`InputError` listing every problem found, or when the contract was not yet
    recorded on ``known_on``."""
    path = Path(path)
    loaded = parse_contract(load_yaml(path), str(path), known_modules, parameters, known_on)
    if loaded is None:
        raise InputError([Problem(str(path), f"contrat pas encore enregistré le {known_on:%d/%m/%Y}", 1, "signed_on")])
    return loaded


def parse_contract(
    data: Any,
    file: str,
    known_modules: Iterable[str] | None = None,
    parameters: ParameterStore | None = None,
    known_on: dt.date | None = None,
) -> tuple[Contract, list[ParameterVersion]] | None:
    """Validate contract data read from YAML (with its history) and build the contract.

    Returns None when ``known_on`` precedes the contract's recording (``recorded_on``,
    by default ``signed_on``): the engine did not know it yet."""
    from .history import apply_history, parse_history

    check = _Checker(file)
    if not isinstance(data, LocatedDict):
        raise InputError([Problem(file, "un contrat doit être un dictionnaire YAML", 1)])
    known = set(known_modules) if known_modules is not None else None

    contract_id = check.text(data, "id", "id")
    illustrative = data.get("illustrative") or []
    structure = None
    s = check.mapping(data, "structure", "structure")
    if s is not None:
        finess = check.text(s, "finess", "structure.finess")
        if finess is not None and not (finess.isdigit() and len(finess) == 9):
            check.bad(s, "finess", "structure.finess", f"numéro FINESS à 9 chiffres attendu, reçu {finess!r}")
        kind = check.text(s, "kind", "structure.kind")
        if kind is not None and kind not in STRUCTURE_KINDS:
            check.bad(s, "kind", "structure.kind", f"type attendu parmi {', '.join(STRUCTURE_KINDS)}, reçu {kind!r}")
        name = check.text(s, "name", "structure.name")
        territory = check.text(s, "territory", "structure.territory")
        commune = check.text(s, "commune", "structure.commune", required=False) or ""
        if None not in (finess, kind, name, territory):
            structure = Structure(finess, name, kind, territory, commune)
    parties = check.mapping(data, "parties", "parties")
    ars = caisse = None
    if parties is not None:
        ars = check.text(parties, "ars", "parties.ars")
        caisse = check.text(parties, "caisse", "parties.caisse")
    signed_on = check.date(data, "signed_on", "signed_on")
    start = check.date(data, "start", "start")
    end = check.date(data, "end", "end")
    span = None
    if start and end:
        if end < start:
            check.bad(data, "end", "end", f"la fin du contrat ({end}) précède son début ({start})")
        else:
            span = DateRange(start, end)

    anchor = (start.month, min(start.day, 28)) if start else (1, 1)
    periods = data.get("periods")
    if periods is not None:
        if not isinstance(periods, LocatedDict) or "anchor" not in periods:
            check.bad(data, "periods", "periods", 'attendu « periods: {anchor: "MM-JJ"} »')
        else:
            raw = str(periods["anchor"])
            try:
                month, day = (int(x) for x in raw.split("-"))
                dt.date(2001, month, day)
                if day > 28:
                    raise ValueError
                anchor = (month, day)
            except ValueError:
                check.bad(periods, "anchor", "periods.anchor", f"attendu MM-JJ avec un jour de 1 à 28, reçu {raw!r}")

    payees: list[Payee] = []
    raw_payees = data.get("payees") or LocatedList()
    if not isinstance(raw_payees, list):
        check.bad(data, "payees", "payees", "liste de bénéficiaires attendue")
        raw_payees = LocatedList()
    for i, p in enumerate(raw_payees):
        field = f"payees[{i}]"
        if not isinstance(p, LocatedDict):
            check.bad(raw_payees, i, field, "bénéficiaire attendu (id, name, iban, bic)")
            continue
        pid = check.text(p, "id", f"{field}.id")
        pname = check.text(p, "name", f"{field}.name")
        if pid and pname:
            payees.append(Payee(pid, pname, p.get("iban"), p.get("bic")))
    if structure and not any(p.id == "structure" for p in payees):
        payees.insert(0, Payee("structure", structure.name))
    payee_ids = {p.id for p in payees}

    enrolments: list[Enrolment] = []
    modules = data.get("modules")
    if not isinstance(modules, LocatedList) or not modules:
        check.bad(data, "modules" if "modules" in data else None, "modules", "au moins un module attendu")
        modules = LocatedList()
    for i, m in enumerate(modules):
        field = f"modules[{i}]"
        if not isinstance(m, LocatedDict):
            check.bad(modules, i, field, "module attendu (code, start, end)")
            continue
        code, m_start, m_end, payee = module_entry(check, m, field, known)
        m_start, m_end = m_start or start, m_end or end
        if payee not in payee_ids:
            check.bad(m, "payee", f"{field}.payee", f"bénéficiaire « {payee} » absent de « payees »")
        if code and m_start and m_end:
            if m_end < m_start:
                check.bad(m, "end", f"{field}.end", "la fin du module précède son début")
            elif span and not (span.start <= m_start and m_end <= span.end):
                check.bad(m, "start", f"{field}.start", f"le module doit rester dans la durée du contrat ({span})")
            else:
                enrolments.append(Enrolment(code, DateRange(m_start, m_end), payee))

    overrides = _overrides(check, data, contract_id, parameters, file)
    recorded_on = check.date(data, "recorded_on", "recorded_on", required=False) or signed_on
    if recorded_on and signed_on and recorded_on < signed_on:
        check.bad(data, "recorded_on", "recorded_on", "un contrat ne peut être enregistré avant sa signature")
    events = parse_history(check, data, file, contract_id, known, parameters, recorded_on)
    if check.problems:
        raise InputError(check.problems)
    contract = Contract(
        id=contract_id,
        structure=structure,
        ars=ars,
        caisse=caisse,
        signed_on=signed_on,
        span=span,
        anchor=anchor,
        enrolments=tuple(enrolments),
        payees=tuple(payees),
        source=file,
        illustrative=tuple(str(x) for x in illustrative),
        signed_end=span.end,
    )
    # The whole history must apply cleanly (each event on the contract as recorded before it).
    apply_history(contract, overrides, events, None, check)
    if check.problems:
        raise InputError(check.problems)
    if known_on is not None and recorded_on > known_on:
        return None
    return apply_history(contract, overrides, events, known_on)


def _overrides(
    check: _Checker, data: LocatedDict, contract_id: str | None, store: ParameterStore | None, file: str
) -> list[ParameterVersion]:
    section = data.get("parameters")
    if section is None:
        return []
    if not isinstance(section, LocatedDict):
        check.bad(data, "parameters", "parameters", "dictionnaire « nom du paramètre: [valeurs datées] » attendu")
        return []
    out = []
    for name, entries in section.items():
        field = f"parameters.{name}"
        if store is not None and name not in store:
            check.bad(section, name, field, "paramètre inconnu des modules installés")
            continue
        if not isinstance(entries, LocatedList):
            check.bad(section, name, field, "liste de valeurs datées attendue")
            continue
        for i, e in enumerate(entries):
            efield = f"{field}[{i}]"
            if not isinstance(e, LocatedDict):
                check.bad(entries, i, efield, "valeur datée attendue (start, value, reference)")
                continue
            e_start = check.date(e, "start", f"{efield}.start")
            e_end = check.date(e, "end", f"{efield}.end", required=False)
            ref = check.text(e, "reference", f"{efield}.reference")
            if "value" not in e:
                check.bad(e, None, f"{efield}.value", "champ obligatoire manquant")
                continue
            version = override_version(check, e, efield, name, e_start, e_end, ref, store, contract_id, file)
            if version is not None:
                out.append(version)
    return out


def module_entry(check, m: LocatedDict, field: str, known: set[str] | None) -> tuple:
    """(code, start, end, payee) of a module entry ``{code, start, end, payee}``: the code must be
    an installed module, start and end are optional, end not before start, payee ``structure`` by
    default. ``code`` is None when the entry is refused (the problem is recorded on ``check``)."""
    code = check.text(m, "code", f"{field}.code")
    if code and known is not None and code not in known:
        installed = ", ".join(sorted(known)) or "aucun"
        check.bad(m, "code", f"{field}.code", f"module inconnu « {code} » ; modules installés : {installed}")
        code = None
    start = check.date(m, "start", f"{field}.start", required=False)
    end = check.date(m, "end", f"{field}.end", required=False)
    if start and end and end < start:
        check.bad(m, "end", f"{field}.end", "la fin du module précède son début")
        code = None
    return code, start, end, str(m.get("payee", "structure"))


def override_version(
    check,
    node: LocatedDict,
    field: str,
    name: str,
    start,
    end,
    reference: str | None,
    store: ParameterStore | None,
    contract_id: str | None,
    file: str,
) -> ParameterVersion | None:
    """A contract's own value of parameter ``name`` from ``node`` (``value``, optional
    ``confidence`` — CONTRACT by default — and ``illustrative``), in force from ``start`` to
    ``end``. Problems are recorded on ``check`` (file, line, field); None when there is one."""
    confidence = str(node.get("confidence", "CONTRACT"))
    if confidence not in CONFIDENCE_LEVELS:
        check.bad(node, "confidence", f"{field}.confidence", f"fiabilité inconnue {confidence!r}")
        return None
    unit = store[name].unit if store is not None else "text"
    columns = store[name].columns if store is not None else None
    try:
        value = parse_value(node["value"], unit, columns)
    except (ValueError, ArithmeticError) as exc:
        check.bad(node, "value", f"{field}.value", str(exc))
        return None
    if not (start and reference and contract_id):
        return None
    return ParameterVersion(
        name=name,
        start=start,
        end=end,
        value=value,
        unit=unit,
        confidence=confidence,
        reference=Reference(reference),
        source=f"{file}:{node.line}",
        contract_id=contract_id,
        illustrative=bool(node.get("illustrative", False)),
    )


#: From this many contract files on, their YAML is read by one process per CPU (see
#: :mod:`~nmr_engine.processes`; ``NMR_CALC_WORKERS``): a national campaign has 3,000.
PROCESS_FILES = 1_000


def _read_document(path: Path) -> Any:
    """The YAML of a contract file, or the :class:`InputError` that reading it raised (returned, so
    that it comes back from another process whole)."""
    try:
        return load_yaml(path)
    except InputError as exc:
        return _Unreadable(exc.problems)


class _Unreadable(InputError):
    """An :class:`InputError` that survives pickling (its problems, not its message, are kept)."""

    def __reduce__(self):
        return (_Unreadable, (self.problems,))


def load_contracts(
    directory: Path,
    known_modules: Iterable[str] | None = None,
    parameters: ParameterStore | None = None,
    known_on: dt.date | None = None,
) -> list[Contract]:
    """Load every ``*.yaml`` contract of a folder; register overrides into ``parameters``.

    All files are checked before anything is returned: one bad file fails the load. With
    ``known_on``: each contract as known that day (contracts recorded later are left out)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError([Problem(str(directory), "dossier des contrats introuvable")])
    problems: list[Problem] = []
    contracts: list[Contract] = []
    overrides: list[ParameterVersion] = []
    seen: dict[str, str] = {}
    known = list(known_modules) if known_modules is not None else None
    paths = sorted(directory.glob("*.yaml"))
    workers = processes.worker_count(processes.CALC_WORKERS_ENV, len(paths), PROCESS_FILES)
    documents = processes.in_processes(_read_document, paths, [1] * len(paths), workers)
    for path, document in zip(paths, documents, strict=True):
        try:
            if isinstance(document, InputError):
                raise document
            loaded = parse_contract(document, str(path), known, parameters, known_on)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if loaded is None:  # not yet recorded on known_on
            continue
        contract, ovs = loaded
        if contract.id in seen:
            problems.append(Problem(str(path), f"identifiant de contrat déjà utilisé par {seen[contract.id]}", 1, "id"))
            continue
        seen[contract.id] = str(path)
        contracts.append(contract)
        overrides.extend(ovs)
    if problems:
        raise InputError(problems)
    if parameters is not None:
        for version in overrides:
            parameters.add_override(version)
    return contracts
