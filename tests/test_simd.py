"""On AMD Zen 4, importing nmr_engine before NumPy turns NumPy's AVX-512 code off (its sort is
several times slower there than the AVX2 one), unless the user chose NumPy's features."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmr_engine.simd import DISABLE_ENV, ENABLE_ENV, avoid_slow_sort, disabled_groups, is_zen4

FLAGS = "fpu sse sse2 avx avx2 bmi2"


def cpuinfo(vendor: str = "AuthenticAMD", family: int = 25, flags: str = FLAGS + " avx512f avx512bw") -> str:
    """The first processor's block of /proc/cpuinfo, and the start of the second."""
    first = f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 17\nflags\t\t: {flags}\n"
    return first + "\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n"


@pytest.mark.parametrize(
    ("text", "zen4"),
    [
        (cpuinfo(), True),  # EPYC 9004 (Genoa), Ryzen 7000
        (cpuinfo(flags=FLAGS), False),  # Zen 3: same family, no AVX-512
        (cpuinfo(family=26), False),  # Zen 5: its AVX-512 sort is fast
        (cpuinfo(vendor="GenuineIntel", family=6), False),
        ("", False),
    ],
)
def test_zen4_is_told_from_cpuinfo(text, zen4):
    assert is_zen4(text) is zen4


@pytest.mark.parametrize(
    ("version", "groups"),
    [
        ("2.4.6", "X86_V4 AVX512_ICL"),
        ("2.10.0", "X86_V4 AVX512_ICL"),
        ("3.0.0rc1", "X86_V4 AVX512_ICL"),
        ("2.3.5", "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"),
        ("1.26.4", "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"),
    ],
)
def test_the_groups_are_named_as_the_numpy_version_names_them(version, groups):
    assert " ".join(disabled_groups(version)) == groups


def test_the_avx512_groups_are_turned_off_on_zen4():
    environ: dict[str, str] = {}
    assert avoid_slow_sort(environ, cpuinfo(), "2.4.6", numpy_loaded=False) is True
    assert environ == {DISABLE_ENV: "X86_V4 AVX512_ICL"}


def test_nothing_is_set_once_numpy_has_chosen():
    environ: dict[str, str] = {}
    assert avoid_slow_sort(environ, cpuinfo(), "2.4.6", numpy_loaded=True) is False
    assert environ == {}


@pytest.mark.parametrize("text", [cpuinfo(family=26), cpuinfo(vendor="GenuineIntel", family=6)])
def test_other_cpus_keep_numpys_choice(text):
    environ: dict[str, str] = {}
    assert avoid_slow_sort(environ, text, "2.4.6", numpy_loaded=False) is False
    assert environ == {}


@pytest.mark.parametrize(("name", "value"), [(DISABLE_ENV, ""), (DISABLE_ENV, "AVX512_ICL"), (ENABLE_ENV, "X86_V4")])
def test_a_users_setting_is_left_as_it_is(name, value):
    environ = {name: value}
    assert avoid_slow_sort(environ, cpuinfo(), "2.4.6", numpy_loaded=False) is False
    assert environ == {name: value}


def _python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in (DISABLE_ENV, ENABLE_ENV)} | env
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    return done.stdout.strip()


FEATURES = (
    "import os, nmr_engine, numpy\n"
    "from numpy._core._multiarray_umath import __cpu_features__ as found\n"
    "print(repr(os.environ.get('NPY_DISABLE_CPU_FEATURES')), found.get('X86_V4'))\n"
)


def _local_cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@pytest.mark.skipif(not is_zen4(_local_cpuinfo()), reason="not an AMD Zen 4 CPU")
def test_importing_nmr_engine_first_turns_numpys_avx512_off_here():
    assert _python(FEATURES) == "'X86_V4 AVX512_ICL' False"
    assert _python(FEATURES, **{DISABLE_ENV: ""}) == "'' True"  # an empty setting: NumPy's choice

    # imported after NumPy: too late, nothing is set
    assert _python("import numpy, nmr_engine, os; print(os.environ.get('NPY_DISABLE_CPU_FEATURES'))") == "None"
