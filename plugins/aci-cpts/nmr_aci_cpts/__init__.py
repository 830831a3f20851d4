"""nmr-engine module plugin: ACI of the communautés professionnelles territoriales de santé (CPTS, 2019)."""

__version__ = "1.0.0"
