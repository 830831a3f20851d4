"""The plugin developer kit: conformance checks any module plugin can run on itself.

A plugin author adds one line to a test module::

    from nmr_engine.testing import conformance_suite

    TestConformance = conformance_suite("my_code", example_dir=Path(__file__).parent.parent / "example")

and pytest runs the standard checks (see :mod:`nmr_engine.testing.conformance`) on the
module's example contracts and data. The pytest plugin
(:mod:`nmr_engine.testing.pytest_plugin`, registered through ``pytest11``) adds the
``nmr_example`` fixture for the plugin's own hand-computed tests.
"""

from .conformance import CHECKS, ConformanceSuite, Example, comparable_lines, conformance_suite

__all__ = ["CHECKS", "ConformanceSuite", "Example", "comparable_lines", "conformance_suite"]
