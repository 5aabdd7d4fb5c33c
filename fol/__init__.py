"""fol: substance identification for Forward Operating Labs.

Data flows one way::

    drivers -> Spectrum -> preprocessing Recipe -> search -> decision -> record/report

Import cost matters (``fol identify`` should answer in well under a second), so this
package imports nothing heavy at top level: import the submodule you need.
"""

__version__ = "0.1.0"
