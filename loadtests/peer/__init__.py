"""The peer of the gateway benchmark: the CSMS a Python user would write in an afternoon (see ``afternoon``)."""
