"""pytest plugin of nmr-engine (registered under ``pytest11``): helpers for plugin authors.

Loaded by pytest in every environment where nmr-engine is installed; it imports nothing
heavy until a fixture is used.

- marker ``nmr_conformance``: set on the classes made by :func:`conformance_suite`
  (``pytest -m nmr_conformance`` runs only the conformance checks);
- fixture ``nmr_example``: a factory of :class:`Example` for hand-computed tests::

      def test_amount(nmr_example, tmp_path):
          example = nmr_example("my_code", HERE.parent / "example")
          lines = example.calculate()
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "nmr_conformance: nmr-engine plugin conformance checks")


def pytest_report_header(config) -> str:
    from nmr_engine.plugin import API_VERSION

    return f"nmr-engine plugin API {API_VERSION}"


@pytest.fixture
def nmr_example():
    """Factory: ``nmr_example(module, example_dir, package_dir=None, periods=None, run_date=None)``."""
    from .conformance import Example

    def make(module: str, example_dir: Path, **kwargs) -> Example:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return Example.from_dir(module, Path(example_dir), **kwargs)

    return make
