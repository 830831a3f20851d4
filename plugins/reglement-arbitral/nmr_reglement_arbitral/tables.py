"""Input tables of the règlement arbitral module."""

from nmr_engine.plugin import Column, TableSpec

PATIENTELE = TableSpec(
    name="patientele",
    description="Une observation de la patientèle médecin traitant d'un médecin de la structure.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("doctor_id", "str", "Identifiant du médecin (RPPS ou pseudonyme)"),
        Column("observed_on", "date", "Date de l'observation (la dernière de la période compte)"),
        Column("mt_patients", "int", "Patients ayant déclaré ce médecin comme médecin traitant", min=0),
        Column("cmu_ame_patients", "int", "Dont patients bénéficiaires de la CMU-C ou de l'AME", min=0),
    ),
    unique=("contract_id", "doctor_id", "observed_on"),
    event_date="observed_on",
)

INDICATORS = TableSpec(
    name="indicators",
    description="Une évaluation d'un indicateur du contrat (la dernière de la période compte).",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("indicator", "str", "Code de l'indicateur (paramètre « indicators » du module)"),
        Column("assessed_on", "date", "Date de l'évaluation"),
        Column("achieved_pct", "int", "Taux d'atteinte, de 0 à 100", min=0),
    ),
    unique=("contract_id", "indicator", "assessed_on"),
    event_date="assessed_on",
)

TABLES = (PATIENTELE, INDICATORS)
