"""Posting: what is due now minus what was already posted, per key, in one transaction.

:func:`prepare` computes the lines (``Workspace.calculate``), keeps those due on the
run date, pseudonymises their texts and fingerprints their inputs and parameters:
it never touches the ledger. :func:`commit` then, holding the ledger's write lock,
diffs them against the posted entries for each (contract, module, period, component,
payee, instalment) and appends the differences as one run. Unchanged inputs post
nothing; a corrected input posts one regularisation per changed key, linked to the
entries it corrects. Entry ids derive from the key, the number of entries already
posted for it and the amount, so a retried run writes the same entries.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pandas as pd
import yaml

from ..engine import Workspace
from ..errors import PluginError
from ..money import format_eur
from ..plugin.api import Explanation
from ..pseudonym import Pseudonymiser, Scrubber, identifiers_among, text_tokens
from .hashchain import canonical_json, seal_fields, seal_run, sha256_text
from .model import INSTALMENT_LABELS, KEY_FIELDS, KIND_OF_INSTALMENT, Entry, Run
from .store import LedgerStore, Progress

Key = tuple[str, ...]


@attrs.frozen
class DueLine:
    """A line due on the run date, ready to be posted (texts already pseudonymised)."""

    key: Key
    label: str
    due_date: dt.date
    amount_cents: int
    explanation: dict[str, Any]
    input_fingerprint: str
    parameter_fingerprint: str
    plugin: str
    plugin_version: str
    #: ``canonical_json(explanation["parameters"])`` when known (computed once for the lines
    #: sharing the same parameter versions; :func:`plan` splices it into the explanation's JSON).
    parameters_json: str | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Proposal:
    """What is due now for the selected periods; computed without reading the ledger."""

    run_date: dt.date
    selectors: tuple[str, ...]
    lines: tuple[DueLine, ...]
    #: (contract, module, period) computed: a posted key there that no line produces any more is due 0.
    scope: frozenset[tuple[str, str, str]]
    #: keys whose instalment falls due after the run date: left alone.
    not_yet_due: frozenset[Key]
    input_fingerprint: str
    parameter_fingerprint: str
    plugins: dict[str, str]
    #: The knowledge date computed with (None: the working files) and the data files read,
    #: {"data/<module>/<table>.csv": sha256}, as recorded on the run.
    known_on: dt.date | None = None
    data_files: dict[str, str] = attrs.field(factory=dict)

    @property
    def due_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)


@attrs.frozen
class PostResult:
    """The run written (None when nothing was new) and its entries."""

    proposal: Proposal
    run: Run | None = None
    entries: tuple[Entry, ...] = ()

    @property
    def total_cents(self) -> int:
        return sum(e.amount_cents for e in self.entries)

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)


def file_digest(path: Path) -> str:
    """sha256 of a file's content, read in blocks (not the whole file in memory: ≈ 2× less CPU
    for the hundreds of MB of a national campaign's data)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def files_fingerprint(files: dict[str, Path], digest: Callable[[Path], str] = file_digest) -> str:
    """sha256 over 'name<TAB>sha256(content)' lines, sorted by name."""
    text = "\n".join(f"{name}\t{digest(path)}" for name, path in sorted(files.items()))
    return sha256_text(text)


def _data_digest(path: Path, aliases: Mapping[str, str] | None, of: Callable[[Path], str] = file_digest) -> str:
    """A data file's sha256, or the original's when ``aliases`` maps it (pseudonymised copies)."""
    digest = of(path)
    return aliases.get(digest, digest) if aliases else digest


def contract_digest(path: Path, known_on: dt.date | None, digest: Callable[[Path], str] = file_digest) -> str:
    """sha256 of a contract file; under ``known_on``, for a file with a ``history:``, of the
    contract as known that day (its YAML without the history events recorded later, canonical
    JSON), so appending a later amendment to the file does not change what an earlier run
    computed with."""
    if known_on is None:
        return digest(path)
    content = Path(path).read_bytes()
    text = content.decode("utf-8")
    if "history:" not in text:  # nothing recorded later: the file as it is (read once when not cached)
        return hashlib.sha256(content).hexdigest() if digest is file_digest else digest(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(text, Loader=loader)
    if isinstance(raw, dict) and isinstance(raw.get("history"), list):

        def known(event: Any) -> bool:
            if not isinstance(event, dict):
                return True
            when = event.get("recorded_on", event.get("date"))
            try:
                return dt.date.fromisoformat(str(when)) <= known_on
            except ValueError:
                return True

        raw = {**raw, "history": [e for e in raw["history"] if known(e)]}
    return sha256_text(json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str))


def data_sources(workspace: Workspace, module: str) -> dict[str, Path]:
    """{"data/<module>/<table>.csv": the file read} for a module's tables, as the workspace reads
    them (under ``known_on``: the recorded version; a file not yet received is left out)."""
    spec = workspace.registry.modules()[module].spec
    files: dict[str, Path] = {}
    for table in spec.tables:
        rel = f"{module}/{table.name}.csv"
        path, _, _ = workspace.data.locate(rel)
        if path is not None and Path(path).exists():
            files[f"data/{rel}"] = Path(path)
    return files


def _digest_of(workspace: Workspace) -> Callable[[Path], str]:
    """How the workspace's files are fingerprinted: once per file version when it shares a read cache."""
    return workspace.cache.digest if workspace.cache is not None else file_digest


def _contract_digests(workspace: Workspace) -> dict[str, str]:
    digest = _digest_of(workspace)
    return {
        f"contracts/{p.name}": contract_digest(p, workspace.known_on, digest)
        for p in sorted(workspace.contracts_dir.glob("*.yaml"))
    }


def _data_digests(
    workspace: Workspace, modules: Sequence[str], aliases: Mapping[str, str] | None
) -> dict[str, dict[str, str]]:
    """{module: {"data/<module>/<table>.csv": sha256}} (see :func:`data_sources`, :func:`_data_digest`)."""
    digest = _digest_of(workspace)
    return {
        code: {name: _data_digest(path, aliases, digest) for name, path in data_sources(workspace, code).items()}
        for code in modules
    }


def digests_fingerprint(digests: Mapping[str, str]) -> str:
    """sha256 over 'name<TAB>sha256' lines, sorted by name (as :func:`files_fingerprint`)."""
    return sha256_text("\n".join(f"{name}\t{digest}" for name, digest in sorted(digests.items())))


def _parameter_files(workspace: Workspace, modules: Sequence[str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for code in modules:
        folder = workspace.registry.modules()[code].spec.parameters_dir
        if folder is not None and Path(folder).is_dir():
            for path in sorted(Path(folder).rglob("*.yaml")):
                files[f"{code}/{path.relative_to(folder)}"] = path
    return files


def prepare(
    workspace: Workspace,
    periods: Sequence[str] | None,
    pseudonymiser: Pseudonymiser,
    modules: Sequence[str] | None = None,
    progress: Progress | None = None,
    digest_aliases: Mapping[str, str] | None = None,
    scrub: Scrubber | None = None,
) -> Proposal:
    """Calculate and keep what is due on ``workspace.run_date`` (writes nothing).

    ``digest_aliases`` maps a data file's sha256 to the one to record (an audit bundle's
    pseudonymised copies stand for the originals); ``scrub`` replaces the pseudonymiser's
    scrubber (an audit bundle's data is already pseudonymised: nothing left to hide)."""
    run_date = workspace.run_date
    if progress:
        progress("calcul", 0, 3)
    registered = workspace.registry.modules()
    chosen = list(modules) if modules else None
    expected = [m for m in registered if chosen is None or m in chosen]  # the modules calculate computes
    # Their data files are hashed while the plugins compute (hashlib and file reads release the GIL).
    with ThreadPoolExecutor(1) as pool:
        hashing = pool.submit(_data_digests, workspace, expected, digest_aliases)
        result = workspace.calculate(list(periods) if periods else None, chosen)
        hashed = hashing.result()
    codes = sorted(result.modules)
    if progress:
        progress("pseudonymisation", 1, 3)
    contracts = _contract_digests(workspace)
    hashed.update(_data_digests(workspace, [code for code in codes if code not in hashed], digest_aliases))
    digests = {code: {**contracts, **hashed[code]} for code in codes}
    module_inputs = {code: digests_fingerprint(d) for code, d in digests.items()}
    data_files = {name: d for per in digests.values() for name, d in per.items() if name.startswith("data/")}
    if progress:
        progress("empreintes", 2, 3)

    lines = result.lines
    undated = lines["due_date"].isna()
    if undated.any():
        row = lines[undated].iloc[0]
        raise PluginError(
            registered[row["module"]].plugin_name,
            f"ligne sans date d'échéance (composante « {row['component']} », période {row['period_id']})",
            row["contract_id"],
        )
    due_mask = lines["due_date"] <= pd.Timestamp(run_date)
    due_rows = _rows(lines[due_mask], (*KEY_FIELDS, "label", "due_date", "amount_cents", "explanation"))
    explanations = [row.explanation.to_dict() for row in due_rows]
    later = lines[~due_mask]
    if scrub is None:  # a mapping for the identifiers the texts to post may hold, not for every patient read
        parts = explanation_parts([row.explanation for row in due_rows], explanations)
        texts = [[str(t) for t in lines["label"].tolist()], [str(t) for t in lines["component"].tolist()], parts]
        scrub = pseudonymiser.scrubber(identifiers_among(result.identifier_columns, text_tokens(texts)))
    shared: dict[tuple[int, ...], tuple[str, str]] = {}  # per list of parameter versions (lines share a few)
    due: list[DueLine] = []
    for row, explanation in zip(due_rows, explanations, strict=True):
        key = (
            row.contract_id,
            row.module,
            row.period_id,
            scrub.text(str(row.component)),
            row.payee_id,
            row.instalment,
        )
        scrubbed = scrub(explanation)
        fingerprint, parameters_json = _shared(shared, row.explanation, explanation, scrubbed)
        due.append(
            DueLine(
                key=key,
                label=scrub.text(str(row.label)),
                due_date=row.due_date.date(),
                amount_cents=int(row.amount_cents),
                explanation=scrubbed,
                input_fingerprint=module_inputs[row.module],
                parameter_fingerprint=fingerprint,
                plugin=registered[row.module].plugin_name,
                plugin_version=result.modules[row.module],
                parameters_json=parameters_json,
            )
        )
    not_yet = frozenset(
        (c, m, p, scrub.text(str(comp)), pay, inst) for c, m, p, comp, pay, inst in _rows(later, KEY_FIELDS)
    )
    scope = frozenset(
        (c, m, p) for c, m, p in result.periods[["contract_id", "module", "period_id"]].itertuples(index=False)
    )
    if progress:
        progress("empreintes", 3, 3)
    return Proposal(
        run_date=run_date,
        selectors=tuple(periods or ()),
        lines=tuple(due),
        scope=scope,
        not_yet_due=not_yet,
        input_fingerprint=sha256_text(canonical_json(module_inputs)),
        parameter_fingerprint=files_fingerprint(_parameter_files(workspace, codes), _digest_of(workspace)),
        plugins={code: f"{registered[code].plugin_name} {result.modules[code]}" for code in codes},
        known_on=workspace.known_on,
        data_files=dict(sorted(data_files.items())),
    )


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[Any]:
    """``frame[columns].itertuples(index=False)`` as a list, built from each column's ``tolist()``
    (≈ 10× faster than iterating text columns backed by pyarrow value by value)."""
    row = collections.namedtuple("Row", columns)  # type: ignore[misc]
    return list(map(row._make, zip(*(frame[c].tolist() for c in columns), strict=True)))


def explanation_parts(explained: Sequence[Explanation], explanations: Sequence[dict[str, Any]]) -> list[Any]:
    """The values of ``explanations`` (``explained[i].to_dict()``) with each parameter version's
    dict listed once, not once per line quoting it: the same texts for :func:`text_tokens`."""
    parts: list[Any] = []
    seen: set[int] = set()
    for explanation, values in zip(explained, explanations, strict=True):
        parts.extend(v for k, v in values.items() if k != "parameters")
        for version, described in zip(explanation.parameters, values["parameters"], strict=True):
            if id(version) not in seen:
                seen.add(id(version))
                parts.append(described)
    return parts


def _shared(
    known: dict[tuple[int, ...], tuple[str, str]],
    explanation: Explanation,
    values: dict[str, Any],
    scrubbed: dict[str, Any],
) -> tuple[str, str]:
    """(:func:`parameter_fingerprint` of ``values["parameters"]``, ``canonical_json`` of
    ``scrubbed["parameters"]``), where ``values`` is ``explanation.to_dict()`` and ``scrubbed``
    its scrubbed copy: computed once per list of parameter versions (``known``, keyed by their
    ids; the caller keeps the versions alive, so the ids are not reused)."""
    key = tuple(id(p) for p in explanation.parameters)
    found = known.get(key)
    if found is None:
        found = known[key] = (parameter_fingerprint(values["parameters"]), canonical_json(scrubbed["parameters"]))
    return found


def parameter_fingerprint(parameters: list[dict[str, Any]]) -> str:
    """sha256 of the parameter versions a line used (id, value, date, reference, confidence;
    not the file path, so the fingerprint does not depend on where the code is installed)."""
    kept = [{k: v for k, v in p.items() if k != "source"} for p in parameters]
    return sha256_text(canonical_json(kept))


def entry_id(key: Key, prior: int, amount_cents: int) -> str:
    """Deterministic: the same difference for the same key at the same point of its history."""
    return "E-" + sha256_text(canonical_json([*key, prior, amount_cents]))[:24]


def plan(proposal: Proposal, posted: Sequence[Entry]) -> list[dict[str, Any]]:
    """The differences to post (unsealed entry fields), sorted by key."""
    history: dict[Key, list[Entry]] = {}
    for e in posted:
        if (e.contract_id, e.module, e.period_id) in proposal.scope and e.key not in proposal.not_yet_due:
            history.setdefault(e.key, []).append(e)
    due = {line.key: line for line in proposal.lines}
    out = []
    for key in sorted(set(due) | set(history)):
        line = due.get(key)
        previous = history.get(key, [])
        already = sum(e.amount_cents for e in previous)
        amount = (line.amount_cents if line else 0) - already
        if amount == 0:
            continue
        last = previous[-1] if previous else None
        kind = "regularisation" if previous else KIND_OF_INSTALMENT[key[5]]
        corrects = tuple(e.entry_id for e in previous)
        due_cents = line.amount_cents if line else 0
        explanation = dict(line.explanation) if line else _vanished_explanation(last)
        explanation["posting"] = {
            "kind": kind,
            "due_cents": due_cents,
            "already_posted_cents": already,
            "amount_cents": amount,
            "corrects": list(corrects),
            "text": _posting_text(kind, key[5], due_cents, already, amount, len(previous)),
        }
        parameters_json = line.parameters_json if line else None
        out.append(
            {
                "entry_id": entry_id(key, len(previous), amount),
                **dict(zip(KEY_FIELDS, key, strict=True)),
                "kind": kind,
                "amount_cents": amount,
                "due_date": line.due_date if line else last.due_date,
                "label": line.label if line else last.label,
                "input_fingerprint": line.input_fingerprint if line else proposal.input_fingerprint,
                "parameter_fingerprint": line.parameter_fingerprint if line else last.parameter_fingerprint,
                "plugin": line.plugin if line else last.plugin,
                "plugin_version": line.plugin_version if line else last.plugin_version,
                "explanation": explanation_json(explanation, parameters_json),
                "corrects": corrects,
            }
        )
    return out


def explanation_json(explanation: dict[str, Any], parameters_json: str | None = None) -> str:
    """``canonical_json(explanation)``; given ``parameters_json``, the JSON of its ``parameters``
    (shared by many lines), that text is spliced in rather than encoded again."""
    if parameters_json is None or "parameters" not in explanation:
        return canonical_json(explanation)
    text = canonical_json({**explanation, "parameters": 0})
    # Outside a JSON string a '"' is not escaped: once in the text, this is the top-level member.
    if text.count(_PARAMETERS_MARK) != 1:
        return canonical_json(explanation)
    return text.replace(_PARAMETERS_MARK, '"parameters":' + parameters_json)


_PARAMETERS_MARK = '"parameters":0'


def _posting_text(kind: str, instalment: str, due: int, already: int, amount: int, n_previous: int) -> str:
    if kind != "regularisation":
        return f"Premier versement ({INSTALMENT_LABELS.get(instalment, instalment)}) : {format_eur(amount)}."
    return (
        f"Régularisation : montant dû {format_eur(due)} − déjà versé {format_eur(already)} "
        f"({n_previous} écriture(s) corrigée(s)) = {format_eur(amount)}."
    )


def _vanished_explanation(last: Entry) -> dict[str, Any]:
    previous = last.explanation_dict()
    return {
        "summary": f"{last.label} : la ligne n'est plus produite par le calcul, rien n'est plus dû",
        "formula": "0,00 € dû",
        "inputs": [],
        "parameters": [],
        "reason": "les données ou paramètres corrigés ne donnent plus droit à ce paiement",
        "rounding": None,
        "warnings": [],
        "previous_summary": previous.get("summary"),
    }


def commit(store: LedgerStore, proposal: Proposal, progress: Progress | None = None) -> PostResult:
    """Append the differences as one run, atomically, under the ledger's write lock."""
    with store.writing() as session:
        if progress:
            progress("comparaison avec le registre", 0, 1)
        fields = plan(proposal, session.entries(period_ids=sorted({p for _, _, p in proposal.scope})))
        if not fields:
            return PostResult(proposal)
        ids = [f["entry_id"] for f in fields]
        run_id = f"{proposal.run_date:%Y%m%d}-{sha256_text(canonical_json(ids))[:10]}"
        recorded_at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        last_seq, last_hash, run_seq, run_prev = session.head()
        common = {"run_id": run_id, "business_date": proposal.run_date, "recorded_at": recorded_at}
        entries = seal_fields([{**f, **common} for f in fields], last_seq + 1, last_hash, session.store.entry_format)
        run = seal_run(
            Run(
                seq=0,
                run_id=run_id,
                business_date=proposal.run_date,
                recorded_at=recorded_at,
                selectors=proposal.selectors,
                input_fingerprint=proposal.input_fingerprint,
                parameter_fingerprint=proposal.parameter_fingerprint,
                plugins=json.dumps(proposal.plugins, sort_keys=True, ensure_ascii=False),
                entry_count=len(entries),
                total_cents=sum(e.amount_cents for e in entries),
                first_entry_seq=entries[0].seq,
                last_entry_hash=entries[-1].hash,
                known_on=proposal.known_on.isoformat() if proposal.known_on else "",
                data_files=canonical_json(proposal.data_files) if proposal.known_on else "",
            ),
            run_seq + 1,
            run_prev,
        )
        session.append(run, entries, progress)
    return PostResult(proposal, run, tuple(entries))


def post(
    store: LedgerStore,
    workspace: Workspace,
    periods: Sequence[str] | None,
    pseudonymiser: Pseudonymiser,
    modules: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> PostResult:
    """:func:`prepare` then :func:`commit`."""
    proposal = prepare(workspace, periods, pseudonymiser, modules, progress)
    return commit(store, proposal, progress)
