"""Making libraries: importing measured spectra, building computed ones, exporting and
calibrating (the library *file format* itself is ``fol.io.library``).
"""
