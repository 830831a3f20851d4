"""Input tables of module 2 (ETP), at the grain of real records."""

from nmr_engine.plugin import Column, TableSpec

PROGRAMMES = TableSpec(
    name="programmes",
    description="Un programme d'ETP par ligne, avec son autorisation ARS (valable 4 ans).",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("programme_id", "str", "Identifiant du programme dans le contrat"),
        Column("title", "str", "Intitulé du programme"),
        Column("authorised_from", "date", "Début de l'autorisation ARS"),
        Column("authorised_to", "date", "Fin de l'autorisation ARS (vide : sans fin connue)", required=False),
    ),
    unique=("contract_id", "programme_id"),
)

SESSIONS = TableSpec(
    name="sessions",
    description="Une ligne par séance : le diagnostic éducatif (kind=diagnostic) ou une séance (kind=seance).",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("programme_id", "str", "Programme (voir programmes.csv)", category=True),
        Column("patient_id", "str", "Identifiant pseudonymisé du patient", pseudonymise=True, category=True),
        Column("session_date", "date", "Date de la séance"),
        Column("kind", "str", "diagnostic ou seance", choices=("diagnostic", "seance")),
    ),
    unique=("contract_id", "programme_id", "patient_id", "session_date", "kind"),
    event_date="session_date",
)

TRAININGS = TableSpec(
    name="trainings",
    description="Une ligne par formation à l'ETP suivie par un professionnel de la structure.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("professional_id", "str", "Identifiant du professionnel (RPPS ou pseudonyme)"),
        Column("training_date", "date", "Date de fin de la formation"),
        Column("training_title", "str", "Intitulé de la formation"),
    ),
    unique=("contract_id", "professional_id", "training_date", "training_title"),
    event_date="training_date",
    optional=True,
)

STRUCTURING = TableSpec(
    name="structuring",
    description="Une ligne par demande du forfait de structuration initiale (payé une fois par contrat).",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("claim_date", "date", "Date de la demande"),
        Column("reference", "str", "Référence de la pièce justificative"),
    ),
    unique=("contract_id", "claim_date"),
    event_date="claim_date",
    optional=True,
)

TABLES = (PROGRAMMES, SESSIONS, TRAININGS, STRUCTURING)
