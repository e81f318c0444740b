"""Roaming in the twin: an eMSP (a mobility service provider whose drivers charge at the operator's chargers) on
its own HTTP server, speaking OCPI 2.2.1 to the CSMS (:mod:`simulator.roaming.emsp`)."""
