"""The calculation: load a workspace (plugins, parameters, contracts, data) and compute lines.

The core names no module: it asks the plugin registry which modules exist, reads
the tables each declares, and calls each module's plugin once for all contracts.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import processes
from .cache import ReadCache, file_key, frame_key
from .contracts import load_contracts
from .errors import InputError, NmrError, PluginError
from .inputs import read_module_tables
from .inputs.snapshots import TableStore
from .inputs.submissions import DataView
from .memory import collection_paused
from .model import DATE_DTYPE, Contract, _selected, modules_periods_frames
from .packed_lines import pack_lines, unpack_lines
from .parameters import ParameterStore, load_parameter_dir
from .periods import DateRange, anchored_periods
from .plugin.api import INSTALMENTS, LINE_COLUMNS, CalculationContext, Explanation, empty_lines
from .plugin.manager import PluginRegistry
from .pseudonym import identifiers_among, text_tokens


@attrs.frozen
class CalculationResult:
    """Lines of a calculation (not posted), with the run's warnings."""

    lines: pd.DataFrame
    warnings: tuple[str, ...]
    modules: dict[str, str]
    periods: pd.DataFrame
    #: The inputs' columns of personal identifiers (``Column(pseudonymise=True)``) read by the run,
    #: as read (their distinct values, :attr:`identifier_values`, are found only when asked for).
    identifier_columns: tuple[pd.Series, ...] = ()
    _distinct: dict[str, tuple[pd.Series, ...]] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    @property
    def identifier_values(self) -> tuple[pd.Series, ...]:
        """Distinct clear non-blank values of :attr:`identifier_columns`, one text array per column
        (kept as arrays: a national run reads millions of them), computed once, when first asked
        for (posting needs them, a calculation alone does not)."""
        if "values" not in self._distinct:
            self._distinct["values"] = tuple(_distinct_texts(column) for column in self.identifier_columns)
        return self._distinct["values"]

    @property
    def total_cents(self) -> int:
        return int(self.lines["amount_cents"].sum())

    @property
    def identifiers(self) -> frozenset[str]:
        """Every identifier read by the run, as Python strings (costly at scale: prefer
        :meth:`identifiers_in`)."""
        return frozenset(v for values in self.identifier_values for v in values.tolist())

    def identifiers_in(self, texts: Iterable[str]) -> set[str]:
        """The identifiers read by the run that may occur in ``texts``: those equal to one of
        their tokens (see :class:`~nmr_engine.pseudonym.Scrubber`), and any identifier that is
        not itself a single token (looked for by the scrubber's regular expression)."""
        return self.identifiers_among(text_tokens(list(texts)))

    def identifiers_among(self, tokens: set[str]) -> set[str]:
        """As :meth:`identifiers_in`, given the texts' tokens (e.g. :func:`~nmr_engine.pseudonym.text_tokens`);
        see :func:`~nmr_engine.pseudonym.identifiers_among`, which posting uses."""
        return identifiers_among(self.identifier_columns, tokens)


def load_parameters(registry: PluginRegistry, cache: ReadCache | None = None) -> ParameterStore:
    """Every module's dated parameters, from the folders the plugins declare."""
    store = ParameterStore()
    problems = []
    for code, registered in registry.modules().items():
        folder = registered.spec.parameters_dir
        if folder is None:
            continue
        try:
            loaded = (
                load_parameter_dir(folder, code)
                if cache is None
                else cache.parameters(folder, code, load_parameter_dir)
            )
            for param in loaded:
                store.add(param)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    return store


#: Below this many input rows, the modules are computed in one process (forking would cost more).
PROCESS_ROWS = 1_000_000


class Workspace:
    """Contracts, data and plugins of one calculation."""

    def __init__(
        self,
        contracts_dir: Path,
        data_dir: Path,
        registry: PluginRegistry | None = None,
        run_date: dt.date | None = None,
        known_on: dt.date | None = None,
        cache: ReadCache | None = None,
        store: TableStore | None = None,
    ):
        """``known_on``: compute with what the engine knew that day — each contract with the
        history events recorded on or before it, each registered data file in the latest
        version received on or before it (see ``contracts/history.py``, ``inputs/submissions.py``).
        None: everything known now (the working files).

        ``cache``: parsed tables and parameter files shared with other workspaces of the process
        (a replay's runs); files changed since are read again. ``store``: big tables checked
        once and kept on disk for the next runs (see ``inputs/snapshots.py``; the CLI's
        ``calculate`` and ``post`` use the data folder's, :meth:`TableStore.for_data`)."""
        self.registry = registry or PluginRegistry()
        self.contracts_dir = Path(contracts_dir)
        self.data_dir = Path(data_dir)
        self.run_date = run_date or dt.date.today()
        self.known_on = known_on
        self.cache = cache
        self.store = store
        self._periods: dict[tuple, tuple[pd.DataFrame, pd.DataFrame]] = {}
        self.parameters = load_parameters(self.registry, cache)
        self.contracts: list[Contract] = load_contracts(
            self.contracts_dir, self.registry.modules().keys(), self.parameters, known_on
        )
        self.data = DataView.open(self.data_dir, known_on)

    def contract(self, contract_id: str) -> Contract:
        return next(c for c in self.contracts if c.id == contract_id)

    def calculate(self, periods: list[str] | None = None, modules: list[str] | None = None) -> CalculationResult:
        """Compute the lines of the selected periods (ids, years or dates; all when None).

        Reads and validates every module's inputs first: any input problem raises
        :class:`InputError` before any plugin runs. The modules' tables are read at the same time,
        one thread per module up to one per CPU (:func:`each_in_threads`); the plugins' hooks run
        one after the other, or shared between processes (:meth:`_run_plugins`). Python's cyclic
        garbage collector waits until the end (:func:`~nmr_engine.memory.collection_paused`)."""
        with collection_paused():
            return self._calculate(periods, modules)

    def _calculate(self, periods: list[str] | None, modules: list[str] | None) -> CalculationResult:
        known = {c.id for c in self.contracts}
        cut = cut_spans_frame(self.contracts, periods)
        suspensions = suspensions_frame(self.contracts)
        notes: list[str] = []
        wanted = [m for m in self.registry.modules() if modules is None or m in modules]
        prepared = []
        selections = []
        frames_of = self._periods_frames(wanted, periods)
        specs = {code: self.registry.modules()[code].spec for code in wanted}
        to_read = [code for code in wanted if not frames_of[code][0].empty]
        notes_of: dict[str, list[str]] = {code: [] for code in to_read}
        read = each_in_threads(
            lambda code: self._read_tables(code, specs[code].tables, known, frames_of[code][0], cut, notes_of[code]),
            to_read,
            InputError,
        )
        for code in wanted:
            spec = specs[code]
            history, selected = frames_of[code]
            selections.append(selected.assign(module=code))
            if history.empty:
                continue
            notes.extend(notes_of[code])
            tables = read[code]
            if isinstance(tables, InputError):
                continue
            context = CalculationContext(spec, selected, history, tables, self.parameters, self.run_date, suspensions)
            prepared.append((code, context))

        unread = {code for code in to_read if isinstance(read[code], InputError)}
        outcomes = self._run_plugins(prepared, compute=not unread)
        checked = iter(problems for problems, _ in outcomes)  # the read modules' checks, in order
        found = [p for code in to_read for p in (read[code].problems if code in unread else next(checked))]
        if found:
            raise InputError(found)
        frames = []
        for _, lines in outcomes:
            if isinstance(lines, BaseException):
                raise lines
            if lines is not None:
                frames.append(lines)
        lines = pd.concat(frames, ignore_index=True) if frames else empty_lines()
        lines = lines.sort_values(["contract_id", "period_id", "module", "component", "instalment"], kind="stable")
        return CalculationResult(
            lines=lines.reset_index(drop=True),
            warnings=tuple(sorted(self.parameters.stale_warnings)) + tuple(dict.fromkeys(notes)),
            modules={code: self.registry.modules()[code].spec.version for code in wanted},
            periods=pd.concat(selections, ignore_index=True) if selections else pd.DataFrame(),
            identifier_columns=_identifier_columns(context for _, context in prepared),
        )

    def _periods_frames(self, modules: list[str], periods: list[str] | None) -> dict:
        """:func:`~nmr_engine.model.modules_periods_frames`, kept for the next calculations of this
        workspace (a post after a preview, a module alone after all of them): its contracts do not
        change. Each calculation gets its own shallow copies (copy-on-write)."""
        known = (id(self.contracts), len(self.contracts), tuple(periods) if periods is not None else None)
        missing = [m for m in modules if (m, known) not in self._periods]
        if missing:
            for module, pair in modules_periods_frames(self.contracts, missing, periods).items():
                self._periods[(module, known)] = pair
        return {m: tuple(f.copy(deep=False) for f in self._periods[(m, known)]) for m in modules}

    def _read_tables(self, code, specs, known, history, cut, notes) -> dict[str, pd.DataFrame]:
        """:func:`read_module_tables`, through the shared cache's module tables when there is one
        (same files, contracts, periods and cut spans as an earlier run: the same tables)."""
        view, key = self.data, None
        if self.cache is not None:
            try:  # each file located once: the key names what is read, and the read reuses it
                located = {f"{code}/{t.name}.csv": self.data.locate(f"{code}/{t.name}.csv") for t in specs}
            except InputError:
                located = None  # read_module_tables reports it, with the other tables' problems
            if located is not None:
                view = _Located(self.data, located)
                key = (
                    str(self.data_dir),
                    code,
                    specs,
                    frozenset(known),
                    tuple((rel, file_key(path), label, tuple(w)) for rel, (path, label, w) in located.items()),
                    frame_key(history),
                    frame_key(cut),
                )
                found = self.cache.modules.get(key, notes)
                if found is not None:
                    return found
        start = len(notes)
        tables = read_module_tables(
            self.data_dir,
            code,
            specs,
            known,
            history,
            view=view,
            cut=cut,
            notes=notes,
            cache=self.cache.tables if self.cache else None,
            store=self.store,
        )
        if key is not None:
            self.cache.modules.put(key, tables, tuple(notes[start:]))
        return tables

    def _run_plugins(self, runs: list[tuple[str, CalculationContext]], compute: bool = True) -> list[tuple[list, Any]]:
        """Each module's plugin checks then, when they found nothing, periods are selected and
        ``compute`` (no other input problem is known), its lines (checked), in module order:
        ``(problems, lines)``, lines None when not computed, or the exception its calculation
        raised (raised by the caller after every module's problems, as in one process where every
        check runs before any calculation; an exception of a check is raised at once, in module
        order).

        A big calculation (:data:`PROCESS_ROWS` input rows or more) shares its modules between
        forked processes, one per CPU or ``NMR_CALC_WORKERS`` (see :mod:`~nmr_engine.processes`):
        each module is checked and computed in the same process, and each child sends back its
        problems, its lines and the stale-parameter warnings its lookups raised."""
        rows = [sum(len(t) for t in context.tables.values()) for _, context in runs]
        workers = processes.worker_count(processes.CALC_WORKERS_ENV, sum(rows), PROCESS_ROWS) if len(runs) > 1 else 1

        def run(item: tuple[str, CalculationContext]) -> tuple[list, Any, set[str]]:
            code, context = item
            try:
                problems = self.registry.validate_inputs(code, context.tables, context)
            except Exception as exc:
                name = self.registry.modules()[code].plugin_name
                raise PluginError(name, f"validation : {exc}", None, code) from exc
            if problems or context.periods.empty or not compute:
                return problems, None, set(self.parameters.stale_warnings)
            try:
                lines = self._run_plugin(code, context)
            except Exception as exc:  # raised after every module's checks (see above)
                if processes.in_child():
                    raise  # computed again in the parent, where it keeps its cause
                return problems, exc, set(self.parameters.stale_warnings)
            if processes.in_child():
                lines = pack_lines(lines)  # cheaper to send back (see packed_lines)
            return problems, lines, set(self.parameters.stale_warnings)

        def received(outcome: tuple[list, Any, set[str]]) -> tuple[list, Any, set[str]]:
            problems, lines, stale = outcome
            return problems, unpack_lines(lines), stale

        done = processes.in_processes(run, runs, rows, workers, received)
        for _, _, stale in done:
            self.parameters.stale_warnings |= stale
        return [(problems, lines) for problems, lines, _ in done]

    def _run_plugin(self, code: str, context: CalculationContext) -> pd.DataFrame:
        registered = self.registry.modules()[code]
        try:
            lines = self.registry.calculate(code, context)
        except NmrError:
            raise
        except Exception as exc:
            contract = _contract_in_traceback(exc) or self._failing_contract(code, context)
            raise PluginError(registered.plugin_name, f"{type(exc).__name__}: {exc}", contract, code) from exc
        lines = validate_lines(lines, code, context, registered.plugin_name)
        return note_set_aside(lines, context)

    def _failing_contract(self, code: str, context: CalculationContext) -> str | None:
        """Find a contract on which the plugin fails alone, by bisection over the contracts
        (a few reruns on subsets of the same inputs). None when it fails only on the whole."""
        contracts = list(dict.fromkeys(context.periods["contract_id"]))
        if len(contracts) <= 1:
            return contracts[0] if contracts else None
        while len(contracts) > 1:
            half = len(contracts) // 2
            for part in (contracts[:half], contracts[half:]):
                if self._fails_on(code, context, part):
                    contracts = part
                    break
            else:
                return None
        return contracts[0]

    def _fails_on(self, code: str, context: CalculationContext, contracts: list[str]) -> bool:
        try:
            validate_lines(self.registry.calculate(code, restrict_context(context, contracts)), code, context, "")
        except Exception:
            return True
        return False


@attrs.frozen
class _Located:
    """A data view whose files were already located (see :meth:`Workspace._read_tables`)."""

    view: DataView
    located: dict[str, tuple]

    def locate(self, rel: str) -> tuple:
        found = self.located.get(rel)
        return found if found is not None else self.view.locate(rel)

    def __getattr__(self, name: str):  # anything else the reader asks of the view
        if name in ("view", "located"):
            raise AttributeError(name)
        return getattr(self.view, name)


def each_in_threads(work: Callable[[str], Any], items: Sequence[str], expected: type[Exception]) -> dict[str, Any]:
    """``work(item)`` of each of ``items``, at the same time in threads (one per CPU at most;
    reading a table spends most of its time in pyarrow and NumPy, outside the GIL): the result,
    or the ``expected`` exception it raised, by item. Any other exception is raised, that of the
    first item in order."""
    workers = min(len(items), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

    def outcome(item: str) -> Any:
        try:
            return work(item)
        except expected as exc:
            return exc

    if workers < 2:
        return {item: outcome(item) for item in items}
    with ThreadPoolExecutor(workers, thread_name_prefix="nmr-read") as pool:
        return dict(zip(items, pool.map(outcome, items), strict=True))


def _identifier_columns(contexts) -> tuple[pd.Series, ...]:
    """The input columns declared ``pseudonymise=True`` (to hide before posting), as read."""
    return tuple(
        context.tables[spec.name][column.name]
        for context in contexts
        for spec in context.module.tables
        for column in spec.columns
        if column.pseudonymise
    )


def _distinct_texts(column: pd.Series) -> pd.Series:
    """The distinct values of ``column`` that are not blank, as text."""
    distinct = pd.Series(column.dropna().unique(), dtype=str)
    texts = pa.array(distinct, type=pa.string())
    keep = np.asarray(pc.not_equal(pc.utf8_trim_whitespace(texts), ""))
    return distinct[keep].reset_index(drop=True)


def note_set_aside(lines: pd.DataFrame, context: CalculationContext) -> pd.DataFrame:
    """Add to the explanation of each line built from a file (its inputs name it) a warning
    listing the rows of that file, in that contract period, set aside by a suspension or a
    termination (see :func:`nmr_engine.inputs.reader.set_aside`)."""
    found = [
        (str(table.attrs.get("file", name)), item)
        for name, table in context.tables.items()
        for item in table.attrs.get("set_aside", ())
    ]
    if not found or lines.empty:
        return lines
    explanations = list(lines["explanation"])
    periods = context.history
    for file, item in found:  # one loop per set-aside group and period, not per record
        own = periods[periods["contract_id"] == item["contract_id"]]
        dates = pd.to_datetime(pd.Series(item["dates"]))
        for period in own.itertuples(index=False):
            inside = ((dates >= period.period_start) & (dates <= period.period_end)).to_numpy()
            if not inside.any():
                continue
            shown = ", ".join(str(x) for x in np.asarray(item["lines"])[inside])
            text = (
                f"{int(inside.sum())} ligne(s) de {file} datée(s) dans cette période ne comptent pas "
                f"({item['reason']}) : ligne(s) {shown}"
            )
            rows = (lines["contract_id"] == item["contract_id"]) & (lines["period_id"] == period.period_id)
            for i in np.flatnonzero(rows.to_numpy()):
                expl = explanations[i]
                if any(file in str(value) for _, value in expl.inputs) and text not in expl.warnings:
                    explanations[i] = attrs.evolve(expl, warnings=(*expl.warnings, text))
    out = lines.copy()
    out["explanation"] = explanations
    return out


def suspensions_frame(contracts: list[Contract]) -> pd.DataFrame:
    """contract_id, start, end (datetimes): every suspension of the contracts."""
    rows = [{"contract_id": c.id, "start": s.start, "end": s.end} for c in contracts for s in c.suspensions]
    frame = pd.DataFrame(rows, columns=["contract_id", "start", "end"])
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col]).astype(DATE_DTYPE)
    return frame


def cut_spans_frame(contracts: list[Contract], periods: list[str] | None = None) -> pd.DataFrame:
    """contract_id, start, end, reason, note: the spans where a contract pays nothing (suspensions,
    days after a termination), as datetimes comparable with the input tables' date columns.
    ``note``: the span touches one of the selected ``periods`` (rows set aside there are reported)."""
    rows = []
    for c in contracts:
        spans = c.cut_spans()
        if not spans:
            continue
        selected = [p.span for p in c.periods() if not periods or _selected(p.span, periods)]
        if c.terminated_on is not None and periods and c.signed_end is not None:
            tail = DateRange(c.terminated_on, c.signed_end)
            selected += [s for s in anchored_periods(tail, *c.anchor) if _selected(s, periods)]
        for span, reason in spans:
            note = any(span.overlaps(s) for s in selected)
            rows.append({"contract_id": c.id, "start": span.start, "end": span.end, "reason": reason, "note": note})
    frame = pd.DataFrame(rows, columns=["contract_id", "start", "end", "reason", "note"])
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col]).astype(DATE_DTYPE)
    return frame


def restrict_context(context: CalculationContext, contracts: list[str]) -> CalculationContext:
    """The same calculation limited to some contracts (their periods and input rows)."""
    keep = set(contracts)

    def only(frame: pd.DataFrame) -> pd.DataFrame:
        if "contract_id" not in frame:
            return frame
        out = frame[frame["contract_id"].isin(keep)].reset_index(drop=True)
        out.attrs = dict(frame.attrs)
        return out

    return attrs.evolve(
        context,
        periods=only(context.periods),
        history=only(context.history),
        tables={name: only(t) for name, t in context.tables.items()},
        suspensions=only(context.suspensions),
    )


def _contract_in_traceback(exc: Exception) -> str | None:
    return getattr(exc, "contract_id", None)


def validate_lines(lines, module: str, context: CalculationContext, plugin: str) -> pd.DataFrame:
    """Check a plugin's output; keep the lines of the selected periods. Raises PluginError
    naming the plugin, the module and, when a line is at fault, its contract."""

    def fail(message: str, contract: str | None = None) -> PluginError:
        return PluginError(plugin, message, contract, module)

    if lines is None:
        raise fail("nmr_calculate n'a rien renvoyé (un tableau de lignes est attendu)")
    if not isinstance(lines, pd.DataFrame):
        raise fail(f"nmr_calculate doit renvoyer un DataFrame, reçu {type(lines).__name__}")
    missing = [c for c in LINE_COLUMNS if c not in lines.columns]
    if missing:
        raise fail(f"colonnes manquantes dans les lignes : {', '.join(missing)}")
    categories = [c for c in lines.columns if isinstance(lines[c].dtype, pd.CategoricalDtype)]
    if categories:  # inputs' identifiers arrive as categories; lines carry them as text
        lines = lines.astype({c: object for c in categories})
    for col in ("quantity", "amount_cents", "unit_amount_cents"):
        if not pd.api.types.is_integer_dtype(lines[col].dtype):
            message = f"la colonne {col} doit être entière (centimes), reçu {lines[col].dtype}"
            raise fail(message, _first_non_integer(lines, col))
    if lines["amount_cents"].isna().any():
        raise fail("montant manquant sur une ligne", lines.loc[lines["amount_cents"].isna(), "contract_id"].iloc[0])
    # checks on the columns' Python values (lists: iterating a text column value by value is slow)
    bad_module = np.array([m != module for m in lines["module"].tolist()], dtype=bool)
    if bad_module.any():
        row = lines[bad_module].iloc[0]
        raise fail(f"ligne d'un autre module ({row['module']})", row["contract_id"])
    bad_inst = np.array([i not in INSTALMENTS for i in lines["instalment"].tolist()], dtype=bool)
    if bad_inst.any():
        row = lines[bad_inst].iloc[0]
        raise fail(f"échéance inconnue « {row['instalment']} »", row["contract_id"])
    not_explained = np.array(
        [not (isinstance(e, Explanation) and bool(e.summary)) for e in lines["explanation"].tolist()], dtype=bool
    )
    if not_explained.any():
        row = lines[not_explained].iloc[0]
        raise fail(f"ligne « {row['component']} » sans explication", row["contract_id"])
    known = set(zip(context.history["contract_id"].tolist(), context.history["period_id"].tolist(), strict=True))
    keys = list(zip(lines["contract_id"].tolist(), lines["period_id"].tolist(), strict=True))
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise fail(f"ligne pour une période inconnue {unknown[0][1]}", unknown[0][0])
    wanted = set(zip(context.periods["contract_id"].tolist(), context.periods["period_id"].tolist(), strict=True))
    keep = [k in wanted for k in keys]
    # .loc: an empty list selects no row, not no column
    out = lines.reset_index(drop=True) if all(keep) else lines.loc[keep].reset_index(drop=True)
    key_cols = ["contract_id", "period_id", "component", "payee_id", "instalment"]
    dup = out.duplicated(key_cols)
    if dup.any():
        row = out[dup].iloc[0]
        raise fail(f"deux lignes pour la même composante « {row['component']} »", row["contract_id"])
    return out


def _first_non_integer(lines: pd.DataFrame, col: str) -> str | None:
    """Contract of the first line whose value in ``col`` is not a whole number (or the first line)."""
    if lines.empty:
        return None
    values = lines[col]
    try:
        bad = values.notna() & (values != values.round())
    except TypeError:
        bad = values.map(lambda v: not isinstance(v, int))
    rows = lines.loc[bad.fillna(True).astype(bool), "contract_id"]
    return str(rows.iloc[0]) if not rows.empty else str(lines["contract_id"].iloc[0])
