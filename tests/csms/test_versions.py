"""One place names the OCPP versions: their subprotocols, and what a stations file or API may call them."""

from __future__ import annotations

import pytest

from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, SUBPROTOCOLS, VERSION_SUBPROTOCOL, parse_version


def test_each_version_has_one_subprotocol_and_back():
    assert VERSION_SUBPROTOCOL == {OCPP21: "ocpp2.1", OCPP201: "ocpp2.0.1", OCPP16: "ocpp1.6"}
    assert {v: k for k, v in SUBPROTOCOLS.items()} == VERSION_SUBPROTOCOL


def test_parse_version_names_what_we_speak_when_it_refuses():
    assert (parse_version("1.6"), parse_version("2.0.1"), parse_version("2.1")) == (OCPP16, OCPP201, OCPP21)
    with pytest.raises(ValueError, match=r"unknown OCPP version '2\.0': expected one of 2\.1, 2\.0\.1, 1\.6"):
        parse_version("2.0")
