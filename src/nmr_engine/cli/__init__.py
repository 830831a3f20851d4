"""The ``nmr`` command line."""
