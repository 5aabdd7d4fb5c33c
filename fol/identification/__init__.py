"""From search to verdict: measurement quality, mixture analysis, calibrated confidence,
the class alarm for unlisted analogues, the decision rules, and the ``Identifier`` pipeline
that runs them in order (``fol.identification.pipeline``).
"""
