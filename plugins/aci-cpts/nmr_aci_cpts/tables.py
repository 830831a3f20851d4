"""Input tables of the ACI CPTS module."""

from nmr_engine.plugin import Column, TableSpec

POPULATION = TableSpec(
    name="population",
    description="Population couverte par le territoire de la CPTS, à une date (la dernière de la période compte).",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("observed_on", "date", "Date de l'observation"),
        Column("population", "int", "Habitants du territoire couvert", min=0),
    ),
    unique=("contract_id", "observed_on"),
    event_date="observed_on",
)

MISSIONS = TableSpec(
    name="missions",
    description="Une mission engagée par la CPTS et la date de son démarrage.",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("mission", "str", "Code de la mission (table aci_cpts.missions)"),
        Column("started_on", "date", "Démarrage de la mission"),
    ),
    unique=("contract_id", "mission"),
)

RESULTS = TableSpec(
    name="mission_results",
    description="Une évaluation des indicateurs d'une mission (la dernière de la période compte).",
    columns=(
        Column("contract_id", "str", "Identifiant du contrat"),
        Column("mission", "str", "Code de la mission"),
        Column("assessed_on", "date", "Date de l'évaluation"),
        Column("achieved_pct", "int", "Taux d'atteinte des indicateurs de la mission, de 0 à 100", min=0),
    ),
    unique=("contract_id", "mission", "assessed_on"),
    event_date="assessed_on",
)

TABLES = (POPULATION, MISSIONS, RESULTS)
