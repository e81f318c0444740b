"""The twin's local authorization (issue 17): a local list with versions and the spec's answers, its limits,
the authorization cache with its lifetime and LRU policy, ClearCache, and offline starts from both."""

from __future__ import annotations

import pytest

from simulator.station.auth import AuthorizationCache, IdTokenInfo, ListLimits, LocalList, UpdateStatus
from tests.simulator.helpers import StationPair
from tests.simulator.test_station_pairing import VERSIONS, make

OK, BLOCKED = IdTokenInfo("Accepted"), IdTokenInfo("Blocked")


# ---- the list and the cache on their own ----------------------------------------------------------------------
def test_a_local_list_takes_full_and_differential_updates_and_refuses_what_breaks_its_rules():
    roomy, small = ListLimits(max_entries=3, per_message=2), ListLimits(max_entries=2)
    lst = LocalList()
    assert lst.update(1, True, {"A": OK, "B": BLOCKED}, roomy) is UpdateStatus.ACCEPTED
    assert lst.update(1, False, {"C": OK}, roomy) is UpdateStatus.VERSION_MISMATCH  # not above the version held
    assert lst.update(2, False, {"A": None, "C": OK}, roomy) is UpdateStatus.ACCEPTED
    assert (lst.version, lst.lookup("A", 0), lst.lookup("C", 0)) == (2, None, OK)
    assert lst.update(3, True, {"A": OK, "B": OK, "C": OK}, roomy) is UpdateStatus.FAILED  # 3 in one message > 2
    assert lst.update(3, False, {"D": OK}, small) is UpdateStatus.FAILED  # the list would hold 3 > 2
    assert lst.update(3, True, {"A": None}, roomy) is UpdateStatus.FAILED  # a Full list cannot remove
    too_long = ListLimits(max_entries=9, bytes_per_message=100)
    assert lst.update(3, False, {"D": OK}, too_long, message_bytes=101) is UpdateStatus.FAILED
    assert (lst.version, len(lst)) == (2, 2), "nothing changes unless Accepted"
    assert lst.update(4, True, {}, roomy) is UpdateStatus.ACCEPTED and len(lst) == 0


def test_the_cache_forgets_after_its_lifetime_and_drops_the_least_recently_used():
    cache = AuthorizationCache(capacity=2)
    cache.update("A", OK, now=0.0)
    cache.update("B", OK, now=0.0)
    assert cache.lookup("A", 10.0, lifetime_s=60) == OK  # A is now the most recently used
    cache.update("C", OK, now=10.0)
    assert cache.lookup("B", 10.0) is None and cache.lookup("A", 10.0) == OK
    assert cache.lookup("A", 70.0, lifetime_s=60) is None, "stored at 0 s, 60 s lifetime"
    assert cache.lookup("C", 69.0, lifetime_s=60) == OK
    assert cache.lookup("C", 100.0) is not None and IdTokenInfo("Accepted", expiry=50.0).at(60.0).status == "Expired"


# ---- the charger, paired with the CSMS ------------------------------------------------------------------------
def send_list(pair: StationPair, version: int, update: str, entries: dict[str, str | None]) -> str:
    if pair.version == "1.6":
        items = [{"idTag": t} | ({"idTagInfo": {"status": s}} if s else {}) for t, s in entries.items()]
        payload = {"listVersion": version, "updateType": update, "localAuthorizationList": items}
    else:
        items = [
            {"idToken": {"idToken": t, "type": "ISO14443"}} | ({"idTokenInfo": {"status": s}} if s else {})
            for t, s in entries.items()
        ]
        payload = {"versionNumber": version, "updateType": update, "localAuthorizationList": items}
    answer = pair.csms_call("SendLocalList", payload).payload
    assert answer is not None
    return str(answer["status"])


def list_version(pair: StationPair) -> int:
    answer = pair.csms_call("GetLocalListVersion", {}).payload or {}
    return int(answer["listVersion" if pair.version == "1.6" else "versionNumber"])


def offline_start(pair: StationPair, token: str) -> bool:
    """Plug in and present ``token`` with the link down; whether the charger starts."""
    if pair.session is not None:
        pair.network_up = False
        pair.drop_link()
    pair.charger.plug_in(1, None, pair.now)
    pair.charger.present_token(1, token, pair.now)
    started = pair.charger.is_energizing(1)
    pair.charger.unplug(1, pair.now)
    return started


@pytest.mark.parametrize("version", VERSIONS)
def test_a_station_starts_offline_from_its_local_list_but_not_for_a_blocked_token(tmp_path, version):
    unknown_ok = "AllowOfflineTxForUnknownId" if version == "1.6" else "AuthCtrlr.OfflineTxForUnknownIdEnabled"
    pair = make(tmp_path, version, config={unknown_ok: "true"})  # only the list can refuse a token offline
    full = {"LIST-OK": "Accepted", "LIST-BLOCKED": "Blocked", "GONE": "Blocked"}
    assert send_list(pair, 1, "Full", full) == "Accepted"
    assert send_list(pair, 1, "Differential", {"LIST-2": "Accepted"}) == "VersionMismatch"
    assert send_list(pair, 2, "Differential", {"LIST-2": "Accepted", "GONE": None}) == "Accepted"
    assert list_version(pair) == 2
    assert offline_start(pair, "LIST-OK")
    assert not offline_start(pair, "LIST-BLOCKED")
    assert offline_start(pair, "GONE"), "removed from the list: unknown, which this station allows offline"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_list_larger_than_the_station_allows_fails_and_a_disabled_list_is_refused(tmp_path, version):
    per_message = "SendLocalListMaxLength" if version == "1.6" else "LocalAuthListCtrlr.ItemsPerMessage"
    enabled = "LocalAuthListEnabled" if version == "1.6" else "LocalAuthListCtrlr.Enabled"
    pair = make(tmp_path, version, config={per_message: "2"})
    assert send_list(pair, 1, "Full", {"A": "Accepted", "B": "Accepted", "C": "Accepted"}) == "Failed"
    assert list_version(pair) == 0
    pair.charger.config.set(enabled, "false")
    assert send_list(pair, 1, "Full", {"A": "Accepted"}) == ("NotSupported" if version == "1.6" else "Failed")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_cache_authorizes_offline_until_cleared(tmp_path, version):
    pair = make(tmp_path, version)
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)  # online: Authorize, whose answer is cached
    pair.settle()
    assert pair.charger.is_energizing(1)
    pair.charger.unplug(1, pair.now)
    pair.settle()
    assert pair.csms_call("ClearCache", {}).payload == {"status": "Accepted"}
    assert not offline_start(pair, "TOKEN-OK"), "the cache was cleared"


def test_a_2_0_1_cache_entry_outlives_its_lifetime_no_longer(tmp_path):
    pair = make(tmp_path, "2.0.1", config={"AuthCacheCtrlr.LifeTime": "600"})
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    pair.charger.unplug(1, pair.now)
    pair.settle()
    pair.run(300)
    assert offline_start(pair, "TOKEN-OK"), "cached 300 s ago, 600 s lifetime"
    pair.run(400)
    assert not offline_start(pair, "TOKEN-OK"), "cached 700 s ago"


def test_clear_cache_is_rejected_without_a_cache_and_entries_counts_the_list(tmp_path):
    pair = make(tmp_path, "2.0.1", config={"AuthCacheCtrlr.Enabled": "false"})
    assert pair.csms_call("ClearCache", {}).payload == {"status": "Rejected"}
    send_list(pair, 1, "Full", {"A": "Accepted", "B": "Accepted"})
    entries = {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "Entries"}}
    answer = pair.csms_call("GetVariables", {"getVariableData": [entries]}).payload or {}
    assert answer["getVariableResult"][0]["attributeValue"] == "2"


@pytest.mark.parametrize("version", VERSIONS)
def test_local_pre_authorize_starts_a_listed_token_online_without_asking(tmp_path, version):
    pre = "LocalPreAuthorize" if version == "1.6" else "AuthCtrlr.LocalPreAuthorize"
    pair = make(tmp_path, version, config={pre: "true"})
    send_list(pair, 1, "Full", {"TOKEN-OK": "Accepted"})
    pair.charger.plug_in(1, "TOKEN-OK", pair.now)
    pair.settle()
    assert pair.charger.is_energizing(1) and not pair.calls("Authorize")
    pair.charger.unplug(1, pair.now)
    pair.settle()
    pair.charger.plug_in(1, "TOKEN-BAD", pair.now)  # not listed, never cached: asked online, and refused
    pair.settle()
    assert not pair.charger.is_energizing(1) and len(pair.calls("Authorize")) == 1
