"""Quality assurance at scale: replay of recordings (planning, workers, resume), metrics with
confidence intervals, regression against earlier results, the HTML report, and the accuracy
evaluation used by ``benchmarks/accuracy.py`` and ``fol library calibrate``.

Add a report here: a module that turns replay results (JSON objects) into a file.
"""
