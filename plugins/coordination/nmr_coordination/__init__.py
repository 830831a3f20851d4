"""nmr-engine module 1: missions coordonnées (ENMR 2009–2014)."""

__version__ = "1.0.0"
