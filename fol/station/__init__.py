"""The officer's station: a local web app (``fol station``) over the case store (``fol.cases``).

``service`` (instrument, measurement jobs, recovery), ``app`` (Starlette routes and
templates), ``plot`` (the decomposition figure), ``report`` (HTML/PDF), ``bundle`` (the
case zip), ``security`` (token and CSRF). Needs the ``station`` extra.
"""
