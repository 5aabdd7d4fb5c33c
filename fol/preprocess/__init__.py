"""Preprocessing: pure steps (``steps``), the recipe that chains them (``Recipe``), the batched
baselines and row statistics they use.

Add a step here: a function ``(x, Y, **params) -> (x, Y)`` registered in ``STEPS``
(``fol.preprocess.steps``); the step contract test in ``tests/preprocess`` runs over every
registered step.
"""
