"""Hook specifications, grouped by the phase of a run in which they are called.

A run goes: **registration** (once, when the plugin manager starts) → **input
validation** (per module, after the core has checked every declared column) →
**calculation** (per module, once for all the contracts of the selected periods).
Outside runs, ``nmr synth`` calls the optional **synthetic data** hook.

A plugin never writes the ledger: it returns proposed payment lines, and the core
validates them ("don't trust the plugins": a plugin that raises or returns invalid
lines fails the whole run, which then writes nothing).
"""

from __future__ import annotations

import pluggy

PROJECT = "nmr_engine"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- Registration ---------------------------------------------------------------------
@hookspec
def nmr_register_modules(register):
    """Declare the remuneration modules this plugin provides.

    Called once, when the engine loads its plugins.

    :param register: a callable; call ``register(ModuleSpec(...))`` once per module. The
        spec gives the module code, title, version, the API version it was written for,
        its input tables (columns and types, validated by the core) and the folder of
        its dated parameter files.
    :return: nothing.

    Example::

        @hookimpl
        def nmr_register_modules(register):
            register(ModuleSpec(code="etp", title="Éducation thérapeutique", version="1.0.0",
                                api_version=API_VERSION, tables=(SESSIONS,), parameters_dir=HERE / "parameters"))
    """


# -- Input validation -----------------------------------------------------------------
@hookspec
def nmr_validate_inputs(module, tables, context):
    """Check what column types cannot: relations between rows and tables.

    Called for each module the plugin registered, after the core has read and
    validated the declared tables (types, required values, bounds, uniqueness, known
    contracts, dates inside the module's periods). Only the plugin that registered
    ``module`` is called.

    :param module: the :class:`ModuleSpec` being validated.
    :param tables: ``{name: DataFrame}``; every row has a ``_line`` column (1-based line in
        its file) and ``frame.attrs["file"]`` holds the file's path, to name in problems.
    :param context: the :class:`CalculationContext` (periods, parameters).
    :return: a list of :class:`nmr_engine.errors.Problem` (empty or None: all good). Any
        problem stops the run: no line of any module is returned; nothing is written.

    In a big run it is called in the process that then calls ``nmr_calculate`` for the module,
    which may be a forked one (see ``nmr_calculate``): return the problems, rely on no side effect.

    Example::

        @hookimpl
        def nmr_validate_inputs(module, tables, context):
            pat = tables["patientele"]
            bad = pat[pat["cmu_ame_patients"] > pat["mt_patients"]]
            return [Problem(pat.attrs["file"], "plus de patients CMU-C/AME que de patients", int(line),
                            "cmu_ame_patients") for line in bad["_line"]]
    """


# -- Calculation ----------------------------------------------------------------------
@hookspec(firstresult=True)
def nmr_calculate(module, context):
    """Compute the payment lines of ``module`` for all the contracts of the periods at once.

    Called once per module and run, only on the plugin that registered the module.
    Work on whole columns (pandas), not row by row. In a big run it may be called in a forked
    process (see ``NMR_CALC_WORKERS``): return everything in the lines, rely on no side effect.

    :param module: the :class:`ModuleSpec`.
    :param context: a :class:`CalculationContext`: ``periods`` to compute, ``tables``
        (validated inputs, with ``period_id`` on dated rows) and ``parameters``.
    :return: a lines frame (see :func:`nmr_engine.plugin.lines_frame` and
        :data:`LINE_COLUMNS`): one row per contract, period, component, payee and
        instalment, amounts in integer cents (rounded half-up once per line), each
        with an :class:`Explanation`. A line that pays nothing (programme not
        authorised, cap reached…) has amount 0 and says why in ``explanation.reason``.

    Example::

        @hookimpl
        def nmr_calculate(module, context):
            sessions = context.tables["sessions"]
            ...
            return lines_frame(records)
    """


# -- Synthetic data (optional) ----------------------------------------------------------
@hookspec(firstresult=True)
def nmr_synthesise(module, contracts, rng_seed, scale, out_dir):
    """Write a realistic synthetic data set of ``module``'s input tables (``nmr synth``).

    Optional: a module without it is simply not enrolled in synthetic contracts. Called
    once per module, only on the plugin that registered it, after the core has drawn the
    contracts. Generate with numpy over all contracts at once (the national scale is
    millions of rows) and deterministically from ``rng_seed`` alone.

    :param module: the :class:`ModuleSpec`.
    :param contracts: a DataFrame, one row per synthetic contract enrolled in ``module``:
        ``contract_id``, ``finess``, ``commune``, ``kind``, ``start``, ``end`` (the
        contract), ``module_start``, ``module_end`` (the enrolment; every generated date
        must fall inside it), ``anchor`` (``"MM-DD"``). Dates are ``datetime64[ns]``.
    :param rng_seed: an int for ``numpy.random.default_rng`` (derived by the core from the
        user's seed and the module code, so adding a module leaves others' data unchanged).
    :param scale: a :class:`SynthScale` (years of activity, patients per structure).
    :param out_dir: the data folder: write ``out_dir/<module code>/<table>.csv`` in the
        same format as real inputs. A *late correction* (a table re-submitted after a
        first version) is written as the corrected ``<table>.csv`` plus the first version
        as ``<table>.v1.csv`` next to it; the core moves the first versions into a
        complete ``data.v1`` folder beside ``out_dir``.
    :return: a dict ``{"rows": {table: rows written}, "notes": [str, ...]}`` — the notes
        describe what was generated (distributions, anomalies, corrections) for the
        data set's manifest.

    Example::

        @hookimpl
        def nmr_synthesise(module, contracts, rng_seed, scale, out_dir):
            rng = np.random.default_rng(rng_seed)
            ...
            frame.to_csv(out_dir / module.code / "sessions.csv", sep=";", index=False)
            return {"rows": {"sessions": len(frame)}, "notes": ["..."]}
    """
