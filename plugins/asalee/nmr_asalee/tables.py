"""Input tables of module 3 (coopération Asalée), at the grain of real records."""

from nmr_engine.plugin import Column, TableSpec

#: The four acts delegated by the GP to the nurse under the Asalée protocol (SEED).
ACTS = (
    "suivi_diabete_type2",
    "suivi_risque_cardiovasculaire",
    "spirometrie_bpco_tabagique",
    "depistage_troubles_cognitifs",
)
ACT_LABELS = {
    "suivi_diabete_type2": "suivi du diabète de type 2",
    "suivi_risque_cardiovasculaire": "suivi du risque cardio-vasculaire",
    "spirometrie_bpco_tabagique": "dépistage de la BPCO du patient tabagique (spirométrie)",
    "depistage_troubles_cognitifs": "dépistage des troubles cognitifs",
}
ROLES = ("infirmier", "medecin")

STAFF = TableSpec(
    name="staff",
    description=(
        "Temps d'un infirmier Asalée ou d'un médecin généraliste de la structure, en ETP, sur un intervalle "
        "de dates (plusieurs lignes par personne si son temps change)."
    ),
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("person_id", "str", "Identifiant du professionnel (RPPS/ADELI ou pseudonyme)"),
        Column("role", "str", "infirmier ou medecin", choices=ROLES),
        Column("fte", "str", "Équivalent temps plein (nombre décimal ≥ 0, ex. 0,5)"),
        Column("present_from", "date", "Début de l'intervalle"),
        Column("present_to", "date", "Fin de l'intervalle (vide : en cours)", required=False),
    ),
    unique=("contract_id", "person_id", "present_from"),
)

FOLLOWED_PATIENTS = TableSpec(
    name="followed_patients",
    description="Un patient pris en charge par l'infirmier pour un acte délégué, à la date de la prise en charge.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("patient_id", "str", "Identifiant pseudonymisé du patient", pseudonymise=True),
        Column("act", "str", "Acte délégué : " + ", ".join(ACTS), choices=ACTS),
        Column("followed_on", "date", "Date de la consultation infirmière"),
    ),
    unique=("contract_id", "patient_id", "act", "followed_on"),
    event_date="followed_on",
)

CONCERTATION = TableSpec(
    name="concertation",
    description="Temps de concertation d'un médecin avec l'infirmier Asalée, en minutes, par séance.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("doctor_id", "str", "Médecin (voir staff.csv, rôle medecin)"),
        Column("session_date", "date", "Date de la concertation"),
        Column("minutes", "int", "Durée en minutes", min=0),
    ),
    unique=("contract_id", "doctor_id", "session_date"),
    event_date="session_date",
    optional=True,
)

TABLES = (STAFF, FOLLOWED_PATIENTS, CONCERTATION)
