"""Input tables of module 1 (missions coordonnées), at the grain of real records."""

from nmr_engine.plugin import Column, TableSpec

#: Roles of the professionals (eligibility: two GPs and one paramedical professional).
ROLES = ("generaliste", "paramedical", "autre")

PATIENTS = TableSpec(
    name="patients",
    description=(
        "Un patient de la patientèle : adulte ayant déclaré son médecin traitant dans la structure, ou enfant "
        "suivi par ses médecins (declared_on : date d'entrée dans la patientèle)."
    ),
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("patient_id", "str", "Identifiant pseudonymisé du patient", pseudonymise=True),
        Column("birth_date", "date", "Date de naissance"),
        Column("ald", "bool", "Patient en affection de longue durée (oui/non)"),
        Column("declared_on", "date", "Date de la déclaration de médecin traitant"),
        Column("ended_on", "date", "Fin de la déclaration (vide : en cours)", required=False),
    ),
    unique=("contract_id", "patient_id"),
)

CHILD_CONSULTATIONS = TableSpec(
    name="child_consultations",
    description="Une consultation d'un enfant de 6 à 16 ans avec un médecin généraliste de la structure.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("patient_id", "str", "Enfant (voir patients.csv)", pseudonymise=True),
        Column("consultation_date", "date", "Date de la consultation"),
        Column("doctor_id", "str", "Médecin de la structure (voir professionals.csv)"),
    ),
    unique=("contract_id", "patient_id", "consultation_date", "doctor_id"),
    event_date="consultation_date",
    optional=True,
)

PROFESSIONALS = TableSpec(
    name="professionals",
    description=(
        "Présence d'un professionnel dans la structure sur un intervalle de dates, en demi-journées par "
        "semaine (1 ETP = 11 demi-journées). Plusieurs lignes par professionnel si sa présence change."
    ),
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("professional_id", "str", "Identifiant du professionnel (RPPS ou pseudonyme)"),
        Column("role", "str", "generaliste, paramedical ou autre", choices=ROLES),
        Column("half_days_per_week", "int", "Demi-journées de présence par semaine", min=0),
        Column("present_from", "date", "Début de l'intervalle"),
        Column("present_to", "date", "Fin de l'intervalle (vide : en cours)", required=False),
    ),
    unique=("contract_id", "professional_id", "present_from"),
)

OBJECTIVES = TableSpec(
    name="objectives",
    description=(
        "Résultat d'un indicateur de santé publique du contrat pour une période (valeurs décimales, "
        "un indicateur plus élevé est meilleur ; floor : seuil de la notation linéaire, vide = 0)."
    ),
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("indicator", "str", "Code de l'indicateur (liste du contrat : coordination.objectives.indicators)"),
        Column("measured_on", "date", "Date de la mesure (place le résultat dans une période)"),
        Column("achieved", "str", "Valeur atteinte (nombre décimal, ex. 62,5)"),
        Column("target", "str", "Cible (nombre décimal)"),
        Column("floor", "str", "Seuil en dessous duquel rien n'est acquis (nombre décimal, vide = 0)", required=False),
    ),
    unique=("contract_id", "indicator", "measured_on"),
    event_date="measured_on",
    optional=True,
)

TABLES = (PATIENTS, CHILD_CONSULTATIONS, PROFESSIONALS, OBJECTIVES)
