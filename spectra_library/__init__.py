"""The shipped data: the substance catalogue (``substances.csv``) and the computed reference
library (``fol-reference.h5``), installed as package data so that a wheel finds them
(``fol.paths.default_library`` / ``default_catalogue``). ``validate.py`` beside them writes
``VALIDATION.md`` (run from a checkout, with ``../shared/data/real``).
"""
