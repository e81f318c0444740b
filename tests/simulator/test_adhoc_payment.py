"""Ad-hoc payment at the charger in the twin (issue 19): chargers with a payment terminal, guests paying by card,
the embedded CSMS holding, stopping and capturing through the sandbox processor; the report checks each card."""

from __future__ import annotations

import random
from pathlib import Path

from simulator import report
from simulator.runner import VirtualRun
from simulator.scenario.loader import load_scenario
from simulator.station.charger import Charger

ROOT = Path(__file__).resolve().parents[2]


class _Meter:
    def energy_wh(self, connector_id: int) -> float:
        return 0.0

    def power_w(self, connector_id: int) -> float:
        return 0.0

    def current_a(self, connector_id: int) -> tuple[float, ...]:
        return (0.0, 0.0, 0.0)

    def voltage_v(self, connector_id: int) -> float:
        return 230.0

    def soc(self, connector_id: int) -> float | None:
        return None


def test_a_card_at_the_terminal_is_authorized_with_its_reference_in_additional_info():
    charger = Charger("pay-1", "2.0.1", meter=_Meter(), rng=random.Random(1), payment_terminal=True)
    assert charger.payment_terminal is not None
    token = charger.payment_terminal.present_card("card_visa_0001")
    again = charger.payment_terminal.present_card("card_visa_0001")
    assert token.startswith("PT-") and len(token) == 15 and again != token  # one token per presentation
    payload = charger.protocol.authorize_payload(token, "Local")
    assert payload == {
        "idToken": {
            "idToken": token,
            "type": "Local",
            "additionalInfo": [{"additionalIdToken": "card_visa_0001", "type": "PaymentCard"}],
        }
    }
    assert "additionalInfo" not in charger.protocol.authorize_payload("RFID-1", "ISO14443")["idToken"]


def test_every_card_session_is_captured_for_its_cdr_and_fee_and_the_long_one_stopped_at_its_hold():
    data = report.build(VirtualRun(load_scenario(ROOT / "scenarios" / "adhoc-payment.yaml")).run())
    cards = data["billing"]["adhoc_payments"]
    assert cards["sessions"] == 6 and cards["declined"] == 1 and cards["capture_mismatches"] == 0
    captured = [c for c in cards["per_card"] if c["status"] == "captured"]
    assert len(captured) == 6
    for card in captured:  # the CSMS, the processor's books and the twin's own sum agree to the cent
        assert card["captured_minor"] == card["processor_captured_minor"] == card["expected_capture_minor"]
        assert card["captured_minor"] <= card["held_minor"]
    (stopped,) = [c for c in captured if c["stop_reason"] == "Remote"]
    assert 2700 <= stopped["captured_minor"] <= 3000  # near its 30.00 EUR hold, not beyond
    failed = [c for c in data["checks"] if not c["passed"]]
    assert not failed, failed
