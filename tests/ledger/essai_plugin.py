"""A test-only module with an advance/balance schedule, to show the ledger is module-agnostic.

Module ``essai``: per contract period, the sum of ``forfaits.csv`` amounts, paid 60 % as an
advance due on the period's first day and the rest as a balance due on its last day. Its
explanation names the patients (declared ``pseudonymise=True``) on purpose: the ledger
must store their pseudonyms only.
"""

from fractions import Fraction

from nmr_engine.money import split_instalments
from nmr_engine.plugin import API_VERSION, Column, Explanation, ModuleSpec, TableSpec, hookimpl, lines_frame

FORFAITS = TableSpec(
    name="forfaits",
    columns=(
        Column("contract_id", "str"),
        Column("patient_id", "str", pseudonymise=True),
        Column("acte_date", "date"),
        Column("montant", "money", min=0),
    ),
    unique=("contract_id", "patient_id", "acte_date"),
    event_date="acte_date",
)
SPEC = ModuleSpec(
    code="essai",
    title="Module d'essai (échéancier 60/40)",
    version="0.1.0",
    api_version=API_VERSION,
    tables=(FORFAITS,),
)


@hookimpl
def nmr_register_modules(register):
    register(SPEC)


@hookimpl
def nmr_calculate(module, context):
    rows = context.tables["forfaits"]
    rows = rows.merge(context.periods[["contract_id", "period_id", "period_start", "period_end", "payee_id"]])
    records = []
    for (contract_id, period_id), group in rows.groupby(["contract_id", "period_id"], sort=True):
        total = int(group["montant"].sum())
        avance, solde = split_instalments(total, [Fraction(3, 5), Fraction(2, 5)])
        patients = ", ".join(sorted(group["patient_id"]))
        for instalment, amount, due in (
            ("avance", avance, group["period_start"].iloc[0]),
            ("solde", solde, group["period_end"].iloc[0]),
        ):
            records.append(
                {
                    "contract_id": contract_id,
                    "module": "essai",
                    "period_id": period_id,
                    "component": "forfait",
                    "label": f"Forfait d'essai ({instalment})",
                    "payee_id": group["payee_id"].iloc[0],
                    "instalment": instalment,
                    "due_date": due,
                    "quantity": len(group),
                    "unit_amount_cents": None,
                    "amount_cents": amount,
                    "explanation": Explanation(
                        summary=f"Forfait d'essai, {instalment}",
                        formula=f"{instalment} de {total} centimes",
                        inputs=(("patients", patients),),
                    ),
                }
            )
    return lines_frame(records)
