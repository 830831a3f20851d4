"""Input tables of the ACI MSP module."""

import attrs
from nmr_reglement_arbitral import tables as ra_tables

from nmr_engine.plugin import Column, TableSpec

# The patientèle and indicator tables are the règlement arbitral's: the ACI kept its mechanics.
PATIENTELE = attrs.evolve(
    ra_tables.PATIENTELE,
    description="Patientèle médecin traitant observée d'un médecin (seuls les associés de la SISA comptent).",
)
INDICATORS = ra_tables.INDICATORS

ASSOCIATES = TableSpec(
    name="associates",
    description="Un professionnel associé de la SISA, sur la durée de son association.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("professional_id", "str", "Identifiant du professionnel (RPPS ou pseudonyme)"),
        Column("profession", "str", "Profession (médecin généraliste, infirmier, kinésithérapeute…)"),
        Column("doctor", "bool", "Médecin (sa patientèle médecin traitant compte) : oui/non"),
        Column("joined_on", "date", "Entrée dans la SISA"),
        Column("left_on", "date", "Sortie de la SISA (vide : toujours associé)", required=False),
    ),
    unique=("contract_id", "professional_id", "joined_on"),
)

TABLES = (PATIENTELE, INDICATORS, ASSOCIATES)
