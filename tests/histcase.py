"""A three-year history for one ETP contract, built in a temporary folder (shared by tests).

Contract TEST-ETP, signed 15/12/2010, calendar-year periods 2011–2014, module etp.
History (in recording order):
  0. avenant n° 1 (effect 01/01/2012, recorded 10/12/2011): new payee « association »,
     test module « forfait » added, paid to the association;
  1. avenant n° 2 (effect 01/07/2012, recorded 20/06/2012): etp.training.amount = 1 200,00 €;
  2. avenant n° 3 (effect 01/09/2013, recorded 20/08/2013): the structure's bank details change;
  3. suspension 01/04/2013 → 30/06/2013, recorded late (15/09/2013): retroactive;
  4. termination from 01/01/2014 (recorded 15/11/2013): the last day is 31/12/2013.
Data submissions: programmes and structuring (01/02/2011, 01/04/2011), trainings v1 (10/01/2013),
trainings v2 = late correction adding a 2012 training (15/05/2013), sessions (20/07/2013).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nmr_engine.engine import Workspace
from nmr_engine.inputs.submissions import record_submission
from nmr_engine.plugin.manager import PluginRegistry

PLUGIN = Path(__file__).parent / "plugins" / "forfait.py"
ROOT = Path(__file__).resolve().parent.parent  # the repository (bundled contracts/ and data/)
D = dt.date.fromisoformat

CONTRACT = """\
id: TEST-ETP
structure: {finess: "590000017", name: Maison de santé de Test, kind: MSP, territory: Test}
parties: {ars: ARS Test, caisse: CPAM Test}
signed_on: 2010-12-15
start: 2011-01-01
end: 2014-12-31
periods: {anchor: "01-01"}
modules:
  - {code: etp}
payees:
  - {id: structure, name: Maison de santé de Test, iban: FR7600000000000000000000001, bic: TESTFRPP}
history:
  - date: 2012-01-01
    recorded_on: 2011-12-10
    event: amendment
    reference: Avenant n° 1 du 10/12/2011
    payees:
      - {id: association, name: Association de coordination de Test}
    add_modules:
      - {code: forfait, payee: association}
  - date: 2012-07-01
    recorded_on: 2012-06-20
    event: amendment
    reference: Avenant n° 2 du 20/06/2012
    parameters:
      etp.training.amount: {value: "1200.00"}
  - date: 2013-09-01
    recorded_on: 2013-08-20
    event: amendment
    reference: Avenant n° 3 (changement de banque)
    payees:
      - {id: structure, iban: FR7600000000000000000000002, bic: NEWBFRPP}
  - date: 2013-04-01
    recorded_on: 2013-09-15
    event: suspension
    until: 2013-06-30
    reference: Décision ARS du 12/09/2013 (suspension rétroactive)
  - date: 2014-01-01
    recorded_on: 2013-11-15
    event: termination
    reference: Lettre de résiliation du 15/11/2013
"""

PROGRAMMES = "contract_id;programme_id;title;authorised_from;authorised_to\nTEST-ETP;P1;Diabète;2011-01-01;2015-12-31\n"
STRUCTURING = "contract_id;claim_date;reference\nTEST-ETP;2011-03-01;Note de structuration\n"
TRAININGS_V1 = (
    "contract_id;professional_id;training_date;training_title\n"
    "TEST-ETP;RPPS-1;2012-03-10;Formation A\n"
    "TEST-ETP;RPPS-2;2012-09-10;Formation B\n"
)
TRAININGS_V2 = TRAININGS_V1 + "TEST-ETP;RPPS-3;2012-11-05;Formation C\n"
SESSIONS = (
    "contract_id;programme_id;patient_id;session_date;kind\n"
    "TEST-ETP;P1;PAT-1;2013-03-01;diagnostic\n"  # line 2
    "TEST-ETP;P1;PAT-1;2013-03-10;seance\n"  # line 3
    "TEST-ETP;P1;PAT-1;2013-03-20;seance\n"  # line 4
    "TEST-ETP;P1;PAT-1;2013-04-10;seance\n"  # line 5: inside the suspension
    "TEST-ETP;P1;PAT-1;2013-05-10;seance\n"  # line 6: inside the suspension
    "TEST-ETP;P1;PAT-1;2013-07-10;seance\n"  # line 7
)


def build(root: Path) -> tuple[Path, Path]:
    """Write the contract and record the data submissions; returns (contracts_dir, data_dir)."""
    contracts, data = root / "contracts", root / "data"
    (data / "etp").mkdir(parents=True)
    contracts.mkdir()
    (contracts / "test.yaml").write_text(CONTRACT, encoding="utf-8")

    def receive(name: str, text: str, on: str, note: str = "") -> None:
        path = data / "etp" / name
        path.write_text(text, encoding="utf-8")
        assert record_submission(data, path, D(on), note) is not None

    receive("programmes.csv", PROGRAMMES, "2011-02-01")
    receive("structuring.csv", STRUCTURING, "2011-04-01")
    receive("trainings.csv", TRAININGS_V1, "2013-01-10")
    receive("trainings.csv", TRAININGS_V2, "2013-05-15", "Formation de novembre 2012 oubliée")
    receive("sessions.csv", SESSIONS, "2013-07-20")
    return contracts, data


def registry() -> PluginRegistry:
    return PluginRegistry(paths=[PLUGIN])


def workspace(root: Path, known_on: str | None, reg: PluginRegistry | None = None) -> Workspace:
    contracts, data = root / "contracts", root / "data"
    return Workspace(contracts, data, reg or registry(), D("2014-03-01"), D(known_on) if known_on else None)


def amounts(result) -> dict[tuple[str, str], int]:
    """(module, component) -> amount in cents."""
    return {(r.module, r.component): int(r.amount_cents) for r in result.lines.itertuples(index=False)}
