"""Which vector code NumPy runs: its AVX-512 sort is slow on AMD Zen 4.

NumPy sorts (``np.sort``, ``np.argsort``, hence ``sort_values`` and the packed sorts of
:func:`~nmr_engine.plugin.helpers.sort_rows`) with x86-simd-sort, in AVX-512 where the CPU has
it. On AMD Zen 4 (family 25 with AVX-512: EPYC 9004 "Genoa", Ryzen 7000) that path's
compress-stores to memory are microcoded, and it is several times slower than the AVX2 one
(numpy/numpy#32690, numpy/x86-simd-sort#6). On the benchmark machine, an EPYC of that family,
``np.sort`` of 5 M int64 took 0.30 s in AVX-512 and 0.06 s in AVX2; ``np.argsort`` 0.61 s and
0.30 s.

NumPy chooses once, when it is imported, from ``NPY_DISABLE_CPU_FEATURES``. :func:`avoid_slow_sort`
sets that variable to the AVX-512 feature groups on such a CPU, before NumPy is loaded: the
package does it on import (``nmr_engine/__init__.py``), so ``nmr`` and any program importing
``nmr_engine`` before NumPy run the AVX2 code (results are the same, only slower or faster).
Nothing is done when NumPy is already loaded (too late), on any other CPU, or when
``NPY_DISABLE_CPU_FEATURES`` or ``NPY_ENABLE_CPU_FEATURES`` is set, even empty: set
``NPY_DISABLE_CPU_FEATURES=`` to keep NumPy's own choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from importlib.metadata import PackageNotFoundError, version

DISABLE_ENV = "NPY_DISABLE_CPU_FEATURES"
ENABLE_ENV = "NPY_ENABLE_CPU_FEATURES"

#: NumPy's names of its AVX-512 feature groups that AMD Zen 4 has, since NumPy 2.4 (the x86-64
#: levels) and before it.
AVX512_GROUPS = ("X86_V4", "AVX512_ICL")
AVX512_GROUPS_BEFORE_2_4 = ("AVX512F", "AVX512CD", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL")


def is_zen4(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo``'s text describes an AMD CPU of family 25 (Zen 3 and Zen 4) with
    AVX-512 (Zen 4 only): the CPU whose AVX-512 sort is slow. Zen 5 (family 26) is not."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor is enough
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return (
        fields.get("vendor_id") == "AuthenticAMD"
        and fields.get("cpu family") == "25"
        and "avx512f" in fields.get("flags", "").split()
    )


def disabled_groups(numpy_version: str) -> tuple[str, ...]:
    """The feature groups to name in ``NPY_DISABLE_CPU_FEATURES`` for this NumPy version (NumPy
    warns about a name it does not dispatch, and keeps it)."""
    parts = []
    for part in numpy_version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return AVX512_GROUPS if tuple(parts) >= (2, 4) else AVX512_GROUPS_BEFORE_2_4


def avoid_slow_sort(
    environ: MutableMapping[str, str] | None = None,
    cpuinfo: str | None = None,
    numpy_version: str | None = None,
    numpy_loaded: bool | None = None,
) -> bool:
    """Set ``NPY_DISABLE_CPU_FEATURES`` to NumPy's AVX-512 groups on AMD Zen 4 (see the module
    doc); True when set. ``environ``, ``cpuinfo``, ``numpy_version`` and ``numpy_loaded`` default
    to this process's environment, ``/proc/cpuinfo``, the installed NumPy and whether this
    process has imported it (given in tests)."""
    environ = os.environ if environ is None else environ
    if DISABLE_ENV in environ or ENABLE_ENV in environ:
        return False
    if "numpy" in sys.modules if numpy_loaded is None else numpy_loaded:
        return False  # NumPy has chosen already
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read(8192)
        except OSError:
            return False
    if not is_zen4(cpuinfo):
        return False
    if numpy_version is None:
        try:
            numpy_version = version("numpy")
        except PackageNotFoundError:
            return False
    environ[DISABLE_ENV] = " ".join(disabled_groups(numpy_version))
    return True
