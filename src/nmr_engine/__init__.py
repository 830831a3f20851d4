"""nmr-engine: accounting engine for the French "nouveaux modes de rémunération".

Module plugins import from :mod:`nmr_engine.plugin`; the marker and the API version are also
here, at the top, as datasette does::

    from nmr_engine import hookimpl
"""

from importlib.metadata import PackageNotFoundError, version

from .simd import avoid_slow_sort

avoid_slow_sort()  # before anything loads NumPy (see nmr_engine.simd)

from .plugin.api import API_VERSION  # noqa: E402 (after avoid_slow_sort)
from .plugin.hookspecs import hookimpl  # noqa: E402

try:
    __version__ = version("nmr-engine")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["API_VERSION", "__version__", "hookimpl"]
