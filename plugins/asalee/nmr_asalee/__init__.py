"""nmr-engine module 3: protocole de coopération Asalée (ENMR, end 2012 – 2015)."""

__version__ = "1.0.0"
