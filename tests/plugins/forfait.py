"""A test-only module plugin ("forfait"): a yearly forfait paid pro rata of the active days.

It has no input table, so it shows what the core's contract history does to a module's
periods: enrolment added by an amendment, suspended days taken out, termination.
amount = annual × active_days / period_days, rounded once (money.div_round).
"""

from pathlib import Path

from nmr_engine.money import div_round, format_eur
from nmr_engine.plugin import API_VERSION, Explanation, ModuleSpec, hookimpl, lines_frame
from nmr_engine.plugin.intervals import suspended_days

SPEC = ModuleSpec(
    code="forfait",
    title="Forfait annuel de test",
    version="0.1.0",
    api_version=API_VERSION,
    parameters_dir=Path(__file__).parent / "forfait_params",
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_calculate(module, context):
    records = []
    # The days suspended, counted by the plugin helper, must be what the core took out of active_days.
    suspended = suspended_days(context, context.periods, "active_start", "active_end")
    if not (suspended == context.periods["suspended_days"]).all():
        raise AssertionError("suspended_days helper and the periods frame disagree")
    for row, days_off in zip(context.periods.itertuples(index=False), suspended, strict=True):  # one per line
        version = context.at("annual", row.period_start.date(), row.contract_id)
        amount = div_round(version.value * row.active_days, row.period_days)
        records.append(
            {
                "contract_id": row.contract_id,
                "module": "forfait",
                "period_id": row.period_id,
                "component": "forfait",
                "label": "Forfait annuel au prorata des jours actifs",
                "payee_id": row.payee_id,
                "instalment": "unique",
                "due_date": row.period_end,
                "quantity": row.active_days,
                "unit_amount_cents": None,
                "amount_cents": amount,
                "explanation": Explanation(
                    summary=f"Forfait annuel : {row.active_days} jour(s) actif(s) sur {row.period_days}",
                    formula=(
                        f"{format_eur(version.value)} × {row.active_days} / {row.period_days} = {format_eur(amount)}"
                    ),
                    inputs=(("jours suspendus", str(days_off)),),
                    parameters=(version,),
                    rounding="montant arrondi une fois au centime (demi-centime au supérieur)",
                ),
            }
        )
    return lines_frame(records)
