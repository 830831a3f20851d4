"""The conformance kit run on the built-in modules, with the bundled example.

The built-in modules are held to exactly the standard a third-party plugin is."""

from pathlib import Path

from nmr_engine.testing import conformance_suite

ROOT = Path(__file__).resolve().parent.parent

TestEtpConformance = conformance_suite("etp", contracts_dir=ROOT / "contracts", data_dir=ROOT / "data")
TestCoordinationConformance = conformance_suite(
    "coordination", contracts_dir=ROOT / "contracts", data_dir=ROOT / "data"
)
TestAsaleeConformance = conformance_suite("asalee", contracts_dir=ROOT / "contracts", data_dir=ROOT / "data")
