"""Verification of a run against what was possible: the offline optimum (:mod:`.optimum`)."""
