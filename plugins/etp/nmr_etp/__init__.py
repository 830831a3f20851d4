"""nmr-engine module 2: éducation thérapeutique du patient (ETP), ENMR 2010–2014."""

__version__ = "1.0.0"
