"""The conformance suite: OCTT-style CSMS test cases played by the twin's charger firmware over real WebSockets.

``sim conformance`` (:mod:`.cli`) runs the built-in catalogue (:mod:`.cases`) through pytest with the
chargetwin plugin (:mod:`.plugin`), which users load for their own cases too. A case drives a
:class:`~.station.StationUnderTest`; every frame the CSMS sends is checked (:mod:`.checks`) and the case's
verdict carries the exact frames (:mod:`.frames`).
"""
