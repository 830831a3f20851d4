"""The plugin developer kit's standard checks, run on this plugin's example."""

from pathlib import Path

from nmr_engine.testing import conformance_suite

HERE = Path(__file__).resolve().parent

# package_dir: used only when the plugin is not installed (its entry point is preferred).
TestConformance = conformance_suite(
    "aci_cpts", example_dir=HERE.parent / "example", package_dir=HERE.parent / "nmr_aci_cpts"
)
