"""Library search: similarities (registry ``SIMILARITIES``), exact top-k kernels, the PCA-bound
index for large libraries, and the ``Searcher`` that ties them to a library section.

Add a similarity here: a class with ``name``, ``prepare`` and ``pair`` registered in
``fol.search.similarity``; the similarity contract test runs over every registered one.
"""
