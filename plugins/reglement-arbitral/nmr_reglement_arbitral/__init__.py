"""nmr-engine module plugin: règlement arbitral 2015 (maisons de santé pluriprofessionnelles)."""

__version__ = "1.0.0"
