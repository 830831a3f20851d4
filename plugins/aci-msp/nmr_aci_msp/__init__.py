"""nmr-engine module plugin: ACI 2017 of maisons de santé pluriprofessionnelles, avenant 1 from 2022."""

__version__ = "1.0.0"
