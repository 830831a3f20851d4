"""Contract histories: the contract as the engine knew it on a date, period by period.

The case (tests/histcase.py): contract TEST-ETP, calendar-year periods 2011–2014, module etp;
avenant 1 adds the test module « forfait » (3 650,00 € a year pro rata of active days, paid to
a new payee) from 01/01/2012; avenant 2 sets the training forfait to 1 200,00 € from
01/07/2012; a late trainings file corrects 2012; a suspension 01/04–30/06/2013 is recorded
late; a termination from 01/01/2014.
"""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from nmr_engine.contracts import load_contracts
from nmr_engine.contracts.history import contract_as_of
from nmr_engine.contracts.loader import load_contract_file
from nmr_engine.engine import load_parameters
from nmr_engine.errors import InputError
from nmr_engine.yamlfile import load_yaml

from . import histcase as h

D = dt.date.fromisoformat


def plain(text: str) -> str:
    """French typography (narrow no-break space in thousands, no-break space before €) as spaces."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    h.build(root)
    return root


@pytest.fixture(scope="module")
def registry():
    return h.registry()


def calc(case, registry, known_on, period):
    result = h.workspace(case, known_on, registry).calculate([period])
    return h.amounts(result), result


def test_before_signature_the_contract_is_unknown(case, registry):
    ws = h.workspace(case, "2010-12-14", registry)
    assert ws.contracts == []
    assert [c.id for c in h.workspace(case, "2010-12-15", registry).contracts] == ["TEST-ETP"]


def test_2011_structuring_only(case, registry):
    amounts, _ = calc(case, registry, "2014-02-01", "2011")
    # 1 structuring claim (01/03/2011) × 1 000,00 € ; forfait not yet enrolled in 2011
    assert amounts == {("etp", "structuration"): 100000}


def test_module_added_by_amendment_only_once_recorded(case, registry):
    # 01/12/2011: avenant 1 (recorded 10/12/2011) not known, no training file received yet.
    amounts, _ = calc(case, registry, "2011-12-01", "2012")
    assert amounts == {}
    ws = h.workspace(case, "2011-12-01", registry)
    assert ws.contract("TEST-ETP").modules() == ["etp"]
    # 10/12/2011: the amendment is known; the forfait runs the whole of 2012 (366 days of 366):
    # 3 650,00 € × 366 / 366 = 3 650,00 €, paid to the association added by the same amendment.
    amounts, result = calc(case, registry, "2011-12-10", "2012")
    assert amounts == {("forfait", "forfait"): 365000}
    assert result.lines["payee_id"].tolist() == ["association"]


def test_parameter_override_from_mid_period(case, registry):
    # Known on 01/02/2013: trainings v1 (received 10/01/2013): 10/03/2012 and 10/09/2012.
    # 1 × 1 000,00 € (before 01/07/2012) + 1 × 1 200,00 € (avenant 2) = 2 200,00 €
    amounts, result = calc(case, registry, "2013-02-01", "2012")
    assert amounts == {("etp", "formation"): 220000, ("forfait", "forfait"): 365000}
    line = result.lines[result.lines["component"] == "formation"].iloc[0]
    assert plain(line["explanation"].formula) == (
        "1 formation(s) × 1 000,00 € (valeur du 01/01/2010) + 1 formation(s) × 1 200,00 € "
        "(valeur du 01/07/2012) = 2 200,00 €"
    )
    # Before avenant 2 was recorded (20/06/2012) the whole year would be at 1 000,00 €: the
    # engine did not know it yet (and had no training file either).
    ws = h.workspace(case, "2012-06-19", registry)
    assert ws.parameters.at("etp.training.amount", D("2012-09-10"), "TEST-ETP").value == 100000
    ws = h.workspace(case, "2012-06-20", registry)
    assert ws.parameters.at("etp.training.amount", D("2012-06-30"), "TEST-ETP").value == 100000
    assert ws.parameters.at("etp.training.amount", D("2012-07-01"), "TEST-ETP").value == 120000


def test_late_data_correction_changes_a_closed_period(case, registry):
    before, _ = calc(case, registry, "2013-05-14", "2012")
    after, result = calc(case, registry, "2013-05-15", "2012")
    # v2 adds a training on 05/11/2012 at the amended 1 200,00 €: 1 000 + 1 200 + 1 200 = 3 400,00 €
    assert before[("etp", "formation")] == 220000
    assert after[("etp", "formation")] == 340000
    assert after[("etp", "formation")] - before[("etp", "formation")] == 120000  # the regularisation
    expl = result.lines.loc[result.lines["component"] == "formation", "explanation"].iloc[0]
    assert expl.inputs[0][1].endswith("trainings.csv (version reçue le 15/05/2013), ligne(s) 2, 3, 4)")


def test_retroactive_suspension(case, registry):
    # Known on 01/08/2013: sessions received 20/07/2013, suspension not yet recorded.
    # PAT-1: diagnostic + 5 séances → tier 5–6: 300,00 € ; forfait 3 650,00 × 365/365.
    amounts, result = calc(case, registry, "2013-08-01", "2013")
    assert amounts == {("etp", "forfait_patient_5_6"): 30000, ("forfait", "forfait"): 365000}
    assert result.warnings == ()
    # Known on 15/09/2013: suspension 01/04–30/06/2013 (30 + 31 + 30 = 91 days).
    # Séances of 10/04 and 10/05 (lines 5, 6) set aside: 3 séances → tier 3–4: 250,00 € ;
    # forfait 3 650,00 € × (365 − 91) / 365 = 3 650,00 × 274 / 365 = 2 740,00 €.
    amounts, result = calc(case, registry, "2013-09-15", "2013")
    assert amounts == {("etp", "forfait_patient_3_4"): 25000, ("forfait", "forfait"): 274000}
    forfait = result.lines[result.lines["module"] == "forfait"].iloc[0]
    assert forfait["quantity"] == 274
    assert forfait["explanation"].inputs == (("jours suspendus", "91"),)
    (warning,) = result.warnings
    assert "sessions.csv (version reçue le 20/07/2013)" in warning
    assert "2 ligne(s) du contrat TEST-ETP" in warning
    assert "contrat suspendu du 01/04/2013 au 30/06/2013" in warning
    assert warning.endswith("(ligne(s) 5, 6)")


def test_termination_ends_the_contract(case, registry):
    # Known on 01/11/2013: 2014 still exists; forfait 3 650,00 × 365/365.
    amounts, _ = calc(case, registry, "2013-11-01", "2014")
    assert amounts == {("forfait", "forfait"): 365000}
    # Known on 15/11/2013: terminated from 01/01/2014, last day 31/12/2013: no 2014 period.
    ws = h.workspace(case, "2013-11-15", registry)
    contract = ws.contract("TEST-ETP")
    assert contract.span.end == D("2013-12-31")
    assert contract.terminated_on == D("2014-01-01")
    assert [p.id for p in contract.periods()][-1] == "2013-01-01/2013-12-31"
    assert all(e.span.end <= D("2013-12-31") for e in contract.enrolments)
    assert ws.calculate(["2014"]).lines.empty


def test_payee_details_change_from_their_date(case, registry):
    contract = h.workspace(case, "2014-02-01", registry).contract("TEST-ETP")
    assert contract.payee("structure", on=D("2013-08-31")).iban == "FR7600000000000000000000001"
    assert contract.payee("structure", on=D("2013-12-31")).iban == "FR7600000000000000000000002"
    assert contract.payee("structure", on=D("2013-12-31")).bic == "NEWBFRPP"
    assert contract.payee("structure", on=D("2013-12-31")).name == "Maison de santé de Test"
    # Before avenant 3 was recorded, the engine only knew the old account.
    early = h.workspace(case, "2013-08-19", registry).contract("TEST-ETP")
    assert early.payee("structure", on=D("2013-12-31")).iban == "FR7600000000000000000000001"


def test_events_known_and_described(case, registry):
    contract = h.workspace(case, "2013-11-15", registry).contract("TEST-ETP")
    assert [(e.kind, e.date, e.recorded_on) for e in contract.events] == [
        ("amendment", D("2012-01-01"), D("2011-12-10")),
        ("amendment", D("2012-07-01"), D("2012-06-20")),
        ("amendment", D("2013-09-01"), D("2013-08-20")),
        ("suspension", D("2013-04-01"), D("2013-09-15")),
        ("termination", D("2014-01-01"), D("2013-11-15")),
    ]
    assert contract.events[0].description == (
        "avenant : bénéficiaire « association » ajouté (Association de coordination de Test) ; "
        "module « forfait » ajouté du 01/01/2012 au 31/12/2014"
    )
    assert plain(contract.events[1].description) == "avenant : paramètre etp.training.amount = 1 200,00 € du 01/07/2012"
    assert contract.events[4].description == (
        "résiliation : contrat résilié à compter du 01/01/2014 (dernier jour couvert : 31/12/2013)"
    )
    assert contract.events[0].source.endswith("test.yaml:13")


def test_file_without_history_loads_as_before(tmp_path):
    # The bundled example has no history: same contracts with or without known_on after signature.
    registry = h.registry()
    store = load_parameters(registry)
    now = load_contracts(h.ROOT / "contracts", registry.modules().keys(), store)
    store2 = load_parameters(registry)
    then = load_contracts(h.ROOT / "contracts", registry.modules().keys(), store2, D("2013-01-01"))
    assert [c.enrolments for c in now] == [c.enrolments for c in then]
    assert all(c.events == () and c.suspensions == () and c.terminated_on is None for c in now)


def test_contract_as_of_on_file_data(case):
    data = load_yaml(case / "contracts" / "test.yaml")
    registry = h.registry()
    store = load_parameters(registry)
    assert contract_as_of(data, D("2010-12-01")) is None
    contract, overrides = contract_as_of(data, D("2012-06-20"), parameters=store)
    assert [e.module for e in contract.enrolments] == ["etp", "forfait"]
    assert [(o.name, o.start, o.value) for o in overrides] == [("etp.training.amount", D("2012-07-01"), 120000)]
    contract, _ = contract_as_of(data, None)
    assert contract.suspensions and contract.span.end == D("2013-12-31")


# -- resumption, module ended ---------------------------------------------------------------------
BASE = """\
id: C1
structure: {finess: "590000017", name: MSP, kind: MSP, territory: T}
parties: {ars: A, caisse: C}
signed_on: 2011-01-01
start: 2011-01-01
end: 2012-12-31
modules:
  - {code: etp}
"""


def write(tmp_path, history: str):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + textwrap.dedent(history), encoding="utf-8")
    return path


def test_suspension_until_resumption_and_module_ended(tmp_path):
    path = write(
        tmp_path,
        """\
        history:
          - {date: 2011-03-01, event: suspension, reference: Décision 1}
          - {date: 2011-05-01, recorded_on: 2011-05-02, event: resumption, reference: Décision 2}
          - {date: 2012-07-01, recorded_on: 2012-01-10, event: amendment, reference: Avenant, end_modules: [etp]}
        """,
    )
    contract, _ = load_contract_file(path, known_on=D("2011-04-01"))
    # Open suspension known, not yet its end: suspended to the end of the contract.
    assert [str(s) for s in contract.suspensions] == ["du 01/03/2011 au 31/12/2012"]
    contract, _ = load_contract_file(path)
    assert [str(s) for s in contract.suspensions] == ["du 01/03/2011 au 30/04/2011"]
    assert contract.suspended_days(contract.periods()[0].span) == 31 + 30  # March + April
    assert [str(e.span) for e in contract.enrolments] == ["du 01/01/2011 au 30/06/2012"]


# -- located errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (
            """\
            history:
              - {date: 2011-03-01, event: amendement, reference: X}
            """,
            "c.yaml, ligne 10, champ « history[0].event » : événement attendu parmi amendment, suspension, "
            "resumption, termination, reçu 'amendement'",
        ),
        (
            """\
            history:
              - date: 2011-13-01
                event: suspension
                reference: X
            """,
            "c.yaml, ligne 10, champ « history[0].date » : date attendue au format AAAA-MM-JJ, reçu '2011-13-01'",
        ),
        (
            """\
            history:
              - date: 2011-03-01
                event: amendment
                reference: Avenant 1
                parameters:
                  etp.training.amount: {value: "1200.001"}
            """,
            "c.yaml, ligne 14, champ « history[0].parameters.etp.training.amount.value » : "
            "montant avec plus de deux décimales : '1200.001'",
        ),
        (
            """\
            history:
              - {date: 2011-06-01, recorded_on: 2011-06-01, event: suspension, reference: A}
              - {date: 2011-03-01, recorded_on: 2011-05-01, event: resumption, reference: B}
            """,
            "c.yaml, ligne 11, champ « history[1].recorded_on » : les événements se suivent dans l'ordre de leur "
            "enregistrement : 01/05/2011 précède l'enregistrement de l'événement précédent (01/06/2011)",
        ),
        (
            """\
            history:
              - {date: 2011-03-01, event: resumption, reference: B}
            """,
            "c.yaml, ligne 10, champ « history[0].event » : aucune suspension en cours à reprendre le 01/03/2011",
        ),
        (
            """\
            history:
              - {date: 2012-01-01, event: termination, reference: R}
              - {date: 2012-03-01, event: amendment, reference: A, end_modules: [etp]}
            """,
            "c.yaml, ligne 11, champ « history[1].date » : date d'effet 01/03/2012 hors de la durée du contrat "
            "(du 01/01/2011 au 31/12/2011, résilié à compter du 01/01/2012)",
        ),
        (
            """\
            history:
              - date: 2011-03-01
                event: amendment
                reference: Avenant 1
                add_modules:
                  - {code: etp, start: 2011-06-01}
            """,
            "c.yaml, ligne 14, champ « history[0].add_modules » : module « etp » déjà souscrit du 01/01/2011 "
            "au 31/12/2012",
        ),
        (
            """\
            history:
              - {date: 2011-03-01, event: suspension, reference: S, until: 2011-02-01}
            """,
            "c.yaml, ligne 10, champ « history[0].until » : la fin de la suspension précède son début",
        ),
        (
            """\
            history:
              - {date: 2011-03-01, event: amendment, reference: A}
            """,
            "c.yaml, ligne 10, champ « history[0] » : un avenant doit modifier au moins une chose : add_modules, "
            "end_modules, parameters ou payees",
        ),
        (
            """\
            history:
              - {date: 2011-03-01, event: suspension, reference: S, add_modules: []}
            """,
            "c.yaml, ligne 10, champ « history[0].add_modules » : champ inconnu pour un événement « suspension » ; "
            "champs admis : date, event, note, recorded_on, reference, until",
        ),
        (
            """\
            history:
              - {date: 2010-12-01, recorded_on: 2010-11-01, event: suspension, reference: S}
            """,
            "c.yaml, ligne 10, champ « history[0].recorded_on » : événement enregistré le 01/11/2010, avant le "
            "contrat lui-même (01/01/2011)",
        ),
        (
            """\
            history:
              - date: 2011-03-01
                event: amendment
                reference: A
                add_modules:
                  - {code: module_inconnu}
                parameters:
                  etp.unknown: {value: "1"}
                payees:
                  - {id: asso, iban: FR76}
            """,
            [
                "c.yaml, ligne 14, champ « history[0].add_modules[0].code » : module inconnu « module_inconnu » ; "
                f"modules installés : {', '.join(sorted(h.registry().modules()))}",
                "c.yaml, ligne 16, champ « history[0].parameters.etp.unknown » : paramètre inconnu des modules "
                "installés",
            ],
        ),
        (
            """\
            history:
              - date: 2011-03-01
                event: amendment
                reference: A
                payees:
                  - {id: asso, iban: FR76}
            """,
            "c.yaml, ligne 14, champ « history[0].payees » : nouveau bénéficiaire « asso » : son nom (name) est "
            "obligatoire",
        ),
        (
            """\
            history:
              - {date: 2011-07-01, event: amendment, reference: A, end_modules: [etp]}
              - date: 2011-10-01
                event: amendment
                reference: B
                add_modules: [{code: etp}]
            """,
            "c.yaml, ligne 14, champ « history[1].add_modules » : module « etp » déjà souscrit dans la période "
            "du 01/01/2011 au 31/12/2011 : une seule souscription d'un module par période de contrat",
        ),
        (
            """\
            recorded_on: 2010-12-01
            """,
            "c.yaml, ligne 9, champ « recorded_on » : un contrat ne peut être enregistré avant sa signature",
        ),
    ],
)
def test_bad_history_entries_are_located(tmp_path, history, expected):
    path = write(tmp_path, history)
    registry = h.registry()
    store = load_parameters(registry)
    with pytest.raises(InputError) as err:
        load_contract_file(path, registry.modules().keys(), store)
    messages = [str(p).replace(str(tmp_path) + "/", "") for p in err.value.problems]
    if isinstance(expected, list):
        assert messages == expected
    else:
        assert expected in messages, messages


def test_a_bad_later_event_fails_even_as_of_an_earlier_date(tmp_path):
    path = write(
        tmp_path,
        """\
        history:
          - {date: 2012-03-01, recorded_on: 2012-02-01, event: amendment, reference: A, end_modules: [asalee]}
        """,
    )
    with pytest.raises(InputError, match="module « asalee » non souscrit au 01/03/2012"):
        load_contract_file(path, known_on=D("2011-06-01"))


def test_activity_after_termination_is_set_aside_not_an_error(tmp_path):
    # Sessions dated 2014 (inside the signed span, after the termination) received before the
    # termination was known: as known later they pay nothing and the run says so.
    h.build(tmp_path)
    data = tmp_path / "data"
    path = data / "etp" / "sessions.csv"
    path.write_text(h.SESSIONS + "TEST-ETP;P1;PAT-2;2014-01-15;diagnostic\n", encoding="utf-8")  # line 8
    h.record_submission(data, path, D("2013-11-01"))
    result = h.workspace(tmp_path, "2013-12-01").calculate(["2014"])
    assert result.lines.empty
    assert result.warnings == (
        f"{data}/etp/sessions.csv (version reçue le 01/11/2013) : 1 ligne(s) du contrat TEST-ETP datée(s) pendant "
        "une période sans paiement (contrat résilié à compter du 01/01/2014) sont écartées (ligne(s) 8)",
    )


def test_cli_show_contract_as_known(case):
    from click.testing import CliRunner

    from nmr_engine.cli.main import cli

    args = ["contracts", "show", "TEST-ETP", "--contracts", str(case / "contracts"), "--plugin", str(h.PLUGIN)]
    out = plain(CliRunner().invoke(cli, [*args, "--known-on", "2013-09-14"]).output).splitlines()
    assert "Signé le 15/12/2010 ; durée du 01/01/2011 au 31/12/2014" in out
    assert "Suspensions (aucun paiement pour ces jours) :" not in out
    out = plain(CliRunner().invoke(cli, [*args, "--known-on", "2013-11-15"]).output).splitlines()
    assert "Signé le 15/12/2010 ; durée du 01/01/2011 au 31/12/2013" in out
    assert "Résilié à compter du 01/01/2014 (fin prévue à la signature : 31/12/2014)" in out
    assert "  - du 01/04/2013 au 30/06/2013 (91 jours)" in out
    assert "  - forfait du 01/01/2012 au 31/12/2013, payé à « association »" in out
    assert "      à compter du 01/09/2013 : Maison de santé de Test, IBAN FR7600000000000000000000002" in out
    assert "  - etp.training.amount = 1 200,00 € du 01/07/2012 (Avenant n° 2 du 20/06/2012)" in out


def test_a_suspension_over_a_whole_period_leaves_no_active_day(tmp_path):
    path = write(
        tmp_path,
        """\
        history:
          - date: 2011-06-01
            event: amendment
            reference: Avenant
            add_modules: [{code: forfait}]
          - {date: 2012-01-01, event: suspension, until: 2012-12-31, reference: Décision}
        """,
    )
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    path.rename(contracts / "c.yaml")
    (tmp_path / "data").mkdir()
    result = h.Workspace(contracts, tmp_path / "data", h.registry(), D("2013-01-01")).calculate(modules=["forfait"])
    got = {r.period_id: (int(r.quantity), int(r.amount_cents)) for r in result.lines.itertuples()}
    # 2011: 01/06–31/12 = 214 days: 3 650,00 × 214 / 365 = 2 140,00 € ; 2012 suspended: 0 day, 0,00 €
    assert got == {"2011-01-01/2011-12-31": (214, 214000), "2012-01-01/2012-12-31": (0, 0)}
