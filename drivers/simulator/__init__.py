"""A simulated Raman/FTIR analyzer that speaks docs/analyzer-protocol.md over a real pty or TCP port.

* :mod:`.model` -- the measurement model (pure numpy): references -> measured spectra;
* :mod:`.instrument` -- the instrument's state machine (``SimulatedAnalyzer``), no I/O;
* :mod:`.server` -- the byte-stream server (``AnalyzerServer``): a pty or loopback TCP port;
* :mod:`.faults` -- seeded fault injection on the outgoing byte stream.

See docs/simulator.md.
"""

from drivers.simulator.faults import FaultSpec
from drivers.simulator.model import Instrument, ReferenceSet, make_instrument, parse_sample, simulate_batch
from drivers.simulator.instrument import SimulatedAnalyzer
from drivers.simulator.server import AnalyzerServer

__all__ = ["AnalyzerServer", "FaultSpec", "Instrument", "ReferenceSet", "SimulatedAnalyzer", "make_instrument",
           "parse_sample", "simulate_batch"]
