"""nmr-engine: accounting engine for the French "nouveaux modes de rémunération".

Module plugins import from :mod:`nmr_engine.plugin`; the marker and the API version are also
here, at the top, as datasette does::

    from nmr_engine import hookimpl
"""

from importlib.metadata import PackageNotFoundError, version

from .plugin.api import API_VERSION
from .plugin.hookspecs import hookimpl

try:
    __version__ = version("nmr-engine")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["API_VERSION", "__version__", "hookimpl"]
