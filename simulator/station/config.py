"""Configuration of the charger firmware: 1.6 configuration keys and 2.0.1 device-model variables.

One table per version. Each row names the *setting* the firmware's behaviour reads (a version-neutral name
such as ``sample_interval``), so the charger core is written once: ``config.get("sample_interval")`` is
``MeterValueSampleInterval`` in 1.6 and ``SampledDataCtrlr.TxUpdatedInterval`` in 2.0.1. Rows whose
``reads`` says "stored only" are reported and writable but change nothing in this model.

Values are kept as the strings the wire carries; :meth:`Configuration.set` checks the type first, so a bad
value is Rejected and never stored.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

from csms.ocpp.versions import OCPP16, OCPP21, OCPP201, Version

#: Measurands this firmware can sample (a configured list naming any other is Rejected).
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Power.Offered",
    "Current.Import",
    "Current.Offered",
    "Voltage",
    "SoC",
)
DEFAULT_MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC"
ENERGY = "Energy.Active.Import.Register"


class ValueType(Enum):
    INTEGER = "integer"
    BOOLEAN = "boolean"
    MEMBER_LIST = "MemberList"
    STRING = "string"


class SetStatus(Enum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


@dataclass(frozen=True, slots=True)
class Entry:
    """One configuration key (1.6) or device-model variable (2.0.1, ``name`` = ``Component.Variable``)."""

    setting: str
    name: str
    default: str
    readonly: bool
    type: ValueType
    reads: str
    reboot_required: bool = False

    @property
    def component(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def variable(self) -> str:
        return self.name.split(".", 1)[1]


INT, BOOL, LIST, STR = ValueType.INTEGER, ValueType.BOOLEAN, ValueType.MEMBER_LIST, ValueType.STRING

V16_KEYS: tuple[Entry, ...] = (
    Entry("heartbeat_interval", "HeartbeatInterval", "300", False, INT, "heartbeat period; the boot answer sets it"),
    Entry("sample_interval", "MeterValueSampleInterval", "60", False, INT, "period of MeterValues in a transaction"),
    Entry("sampled_measurands", "MeterValuesSampledData", DEFAULT_MEASURANDS, False, LIST, "measurands of MeterValues"),
    Entry("started_measurands", "StartTxnSampledData", "Energy.Active.Import.Register", False, LIST, "stored only"),
    Entry("ended_measurands", "StopTxnSampledData", "", False, LIST, "stored only (meterStop carries the register)"),
    Entry("clock_aligned_interval", "ClockAlignedDataInterval", "0", False, INT, "Sample.Clock period, from UTC 0:00"),
    Entry("aligned_measurands", "MeterValuesAlignedData", ENERGY, False, LIST, "measurands of Sample.Clock"),
    Entry("connection_timeout", "ConnectionTimeOut", "60", False, INT, "remote start without a plug expires"),
    Entry("local_authorize_offline", "LocalAuthorizeOffline", "true", False, BOOL, "offline start from cache/list"),
    Entry("local_pre_authorize", "LocalPreAuthorize", "false", False, BOOL, "start from cache/list, no Authorize"),
    Entry("auth_cache_enabled", "AuthorizationCacheEnabled", "true", False, BOOL, "cache Authorize/tx answers"),
    Entry("local_list_enabled", "LocalAuthListEnabled", "true", False, BOOL, "consult the local list"),
    Entry("local_list_max", "LocalAuthListMaxLength", "100", True, INT, "SendLocalList size limit"),
    Entry("local_list_per_message", "SendLocalListMaxLength", "100", True, INT, "entries per SendLocalList"),
    Entry("authorize_remote", "AuthorizeRemoteTxRequests", "false", False, BOOL, "Authorize before a remote start"),
    Entry("allow_offline_unknown", "AllowOfflineTxForUnknownId", "false", False, BOOL, "offline start, unknown id"),
    Entry("stop_on_invalid_id", "StopTransactionOnInvalidId", "true", False, BOOL, "stop DeAuthorized, else suspend"),
    Entry("stop_on_ev_side_disconnect", "StopTransactionOnEVSideDisconnect", "true", True, BOOL, "unplug stops tx"),
    Entry("number_of_connectors", "NumberOfConnectors", "1", True, INT, "connectors reported"),
    Entry("tx_message_attempts", "TransactionMessageAttempts", "3", False, INT, "tries per transaction message"),
    Entry("tx_message_retry_interval", "TransactionMessageRetryInterval", "60", False, INT, "wait × attempt number"),
    Entry("reset_retries", "ResetRetries", "1", False, INT, "stored only (a reset always succeeds here)"),
    Entry("minimum_status_duration", "MinimumStatusDuration", "0", False, INT, "stored only"),
    Entry("backoff_min", "ReconnectBackOffWaitMinimum", "10", False, INT, "reconnect back-off base [s]"),
    Entry("backoff_random_range", "ReconnectBackOffRandomRange", "5", False, INT, "reconnect jitter ± [s]"),
    Entry("backoff_repeat_times", "ReconnectBackOffRepeatTimes", "5", False, INT, "doublings before the cap"),
    Entry("ping_interval", "WebSocketPingInterval", "0", False, INT, "the link shell, at connect", True),
    Entry("reserve_any", "ReserveConnectorZeroSupported", "true", True, BOOL, "ReserveNow of connector 0"),
    Entry("shows_cost", "CustomDisplayCostAndPrice", "true", True, BOOL, "California Pricing cost messages shown"),
    Entry(
        "supported_profiles",
        "SupportedFeatureProfiles",
        "Core,LocalAuthListManagement,SmartCharging,RemoteTrigger,Reservation",
        True,
        STR,
        "reported",
    ),
)

V201_VARIABLES: tuple[Entry, ...] = (
    Entry("heartbeat_interval", "OCPPCommCtrlr.HeartbeatInterval", "300", False, INT, "heartbeat period"),
    Entry("sample_interval", "SampledDataCtrlr.TxUpdatedInterval", "60", False, INT, "period of Updated events"),
    Entry(
        "sampled_measurands",
        "SampledDataCtrlr.TxUpdatedMeasurands",
        DEFAULT_MEASURANDS,
        False,
        LIST,
        "measurands of Updated events",
    ),
    Entry(
        "started_measurands",
        "SampledDataCtrlr.TxStartedMeasurands",
        "Energy.Active.Import.Register",
        False,
        LIST,
        "measurands of the Started event",
    ),
    Entry(
        "ended_measurands",
        "SampledDataCtrlr.TxEndedMeasurands",
        "Energy.Active.Import.Register",
        False,
        LIST,
        "measurands of the Ended event",
    ),
    Entry("clock_aligned_interval", "AlignedDataCtrlr.Interval", "0", False, INT, "period of MeterValueClock events"),
    Entry("aligned_measurands", "AlignedDataCtrlr.Measurands", ENERGY, False, LIST, "measurands of Sample.Clock"),
    Entry("aligned_when_idle", "AlignedDataCtrlr.SendDuringIdle", "false", False, BOOL, "Sample.Clock with no tx"),
    Entry("connection_timeout", "TxCtrlr.EVConnectionTimeOut", "60", False, INT, "remote start without a plug expires"),
    Entry("local_authorize_offline", "AuthCtrlr.LocalAuthorizeOffline", "true", False, BOOL, "offline start"),
    Entry("local_pre_authorize", "AuthCtrlr.LocalPreAuthorize", "false", False, BOOL, "start from cache/list"),
    Entry("auth_cache_enabled", "AuthCacheCtrlr.Enabled", "true", False, BOOL, "cache authorization answers"),
    Entry("local_list_enabled", "LocalAuthListCtrlr.Enabled", "true", False, BOOL, "consult the local list"),
    Entry("local_list_max", "LocalAuthListCtrlr.Entries", "100", True, INT, "list capacity (MaxLimit)"),
    Entry("local_list_per_message", "LocalAuthListCtrlr.ItemsPerMessage", "100", True, INT, "entries per message"),
    Entry("local_list_bytes", "LocalAuthListCtrlr.BytesPerMessage", "16384", True, INT, "bytes per SendLocalList"),
    Entry("auth_cache_lifetime", "AuthCacheCtrlr.LifeTime", "86400", False, INT, "seconds a cached answer holds"),
    Entry("auth_cache_policy", "AuthCacheCtrlr.Policy", "LRU", True, STR, "which entry a full cache drops"),
    Entry("authorize_remote", "AuthCtrlr.AuthorizeRemoteStart", "false", False, BOOL, "Authorize before remote start"),
    Entry("allow_offline_unknown", "AuthCtrlr.OfflineTxForUnknownIdEnabled", "false", False, BOOL, "offline, unknown"),
    Entry("stop_on_invalid_id", "TxCtrlr.StopTxOnInvalidId", "true", False, BOOL, "stop DeAuthorized, else suspend"),
    Entry("stop_on_ev_side_disconnect", "TxCtrlr.StopTxOnEVSideDisconnect", "true", True, BOOL, "unplug ends tx"),
    Entry("number_of_connectors", "ChargingStation.NumberOfEVSEs", "1", True, INT, "EVSEs reported"),
    Entry("tx_message_attempts", "OCPPCommCtrlr.MessageAttempts", "3", False, INT, "tries per transaction event"),
    Entry("tx_message_retry_interval", "OCPPCommCtrlr.MessageAttemptInterval", "60", False, INT, "wait × attempt"),
    Entry("reset_retries", "OCPPCommCtrlr.ResetRetries", "1", False, INT, "stored only"),
    Entry("minimum_status_duration", "ChargingStation.MinimumStatusDuration", "0", False, INT, "stored only"),
    Entry("backoff_min", "OCPPCommCtrlr.RetryBackOffWaitMinimum", "10", False, INT, "reconnect back-off base [s]"),
    Entry("backoff_random_range", "OCPPCommCtrlr.RetryBackOffRandomRange", "5", False, INT, "reconnect jitter ± [s]"),
    Entry("backoff_repeat_times", "OCPPCommCtrlr.RetryBackOffRepeatTimes", "5", False, INT, "doublings before cap"),
    Entry("ping_interval", "OCPPCommCtrlr.WebSocketPingInterval", "0", False, INT, "the link shell, at connect", True),
    Entry("items_per_report", "DeviceDataCtrlr.ItemsPerMessageGetReport", "10", True, INT, "NotifyReport page size"),
    Entry("offline_threshold", "OCPPCommCtrlr.OfflineThreshold", "60", False, INT, "stored only"),
    Entry("reservation_enabled", "ReservationCtrlr.Enabled", "true", False, BOOL, "ReserveNow is served"),
    Entry("reserve_any", "ReservationCtrlr.NonEvseSpecific", "true", True, BOOL, "ReserveNow without evseId"),
)

TABLES: dict[Version, tuple[Entry, ...]] = {OCPP16: V16_KEYS, OCPP201: V201_VARIABLES, OCPP21: V201_VARIABLES}
_DEFAULTS: dict[Version, dict[str, str]] = {v: {e.name: e.default for e in table} for v, table in TABLES.items()}


@functools.cache
def _indexes(version: Version) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """The version's table by wire name and by setting: built once, shared by every charger (read only)."""
    table = TABLES[version]
    return {e.name: e for e in table}, {e.setting: e for e in table}


def _check(entry: Entry, value: str) -> bool:
    if entry.type is ValueType.INTEGER:
        try:
            return int(value) >= 0
        except ValueError:
            return False
    if entry.type is ValueType.BOOLEAN:
        return value.lower() in ("true", "false")
    if entry.type is ValueType.MEMBER_LIST:
        return all(m.strip() in MEASURANDS for m in value.split(",") if m.strip())
    return len(value) <= 500


#: Parsed member lists (measurands), shared by every charger: a fleet's chargers mostly read the same few.
_MEMBER_LISTS: dict[str, tuple[str, ...]] = {}
_MEMBER_LISTS_KEPT = 256


class Configuration:
    """The current values of one version's table; typed reads by setting, wire-level writes by name.

    Args:
        version: which table.
        overrides: ``name -> value`` replacing defaults (readonly ones included: the factory sets them).
        extra: keys of the charger's vendor beyond the table.
    """

    __slots__ = ("_by_name", "_by_setting", "_defaults", "_parsed", "_values", "table", "version")

    def __init__(
        self, version: Version, overrides: Mapping[str, str] | None = None, extra: tuple[Entry, ...] = ()
    ) -> None:
        self.version = version
        self.table = TABLES[version] + extra
        self._by_name, self._by_setting = _indexes(version)
        if extra:  # a vendor's own keys (simulator.station.vendors): this charger's table only
            self._by_name = {**self._by_name, **{e.name: e for e in extra}}
            self._by_setting = {**self._by_setting, **{e.setting: e for e in extra}}
        # Only what differs from the table's defaults: a fleet of thousands shares the defaults.
        self._defaults = {**_DEFAULTS[version], **{e.name: e.default for e in extra}} if extra else _DEFAULTS[version]
        self._values: dict[str, str] = {}
        self._parsed: dict[str, int | bool | str | tuple[str, ...]] = {}  # by setting, dropped when written
        for name, value in (overrides or {}).items():
            if name not in self._by_name:
                raise KeyError(f"unknown configuration {name!r} for OCPP {version}")
            self._values[name] = value

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.table)

    def entry(self, name: str) -> Entry | None:
        return self._by_name.get(name)

    def name_of(self, setting: str) -> str:
        return self._by_setting[setting].name

    def has(self, setting: str) -> bool:
        """Whether this version's table has ``setting`` (some exist in one version only)."""
        return setting in self._by_setting

    def value(self, name: str) -> str:
        value = self._values.get(name)
        return self._defaults[name] if value is None else value

    def get(self, setting: str) -> int | bool | str | tuple[str, ...]:
        value = self._parsed.get(setting)
        if value is None:  # the firmware reads some settings at every sample: parse each value once
            value = self._parsed[setting] = self._parse(self._by_setting[setting])
        return value

    def _parse(self, entry: Entry) -> int | bool | str | tuple[str, ...]:
        raw = self.value(entry.name)
        if entry.type is ValueType.INTEGER:
            return int(raw)
        if entry.type is ValueType.BOOLEAN:
            return raw.lower() == "true"
        if entry.type is ValueType.MEMBER_LIST:
            members = _MEMBER_LISTS.get(raw)
            if members is None:  # one tuple per list, whichever charger reads it (not one per charger)
                members = tuple(m.strip() for m in raw.split(",") if m.strip())
                if len(_MEMBER_LISTS) < _MEMBER_LISTS_KEPT:  # a CSMS may set any number of lists
                    _MEMBER_LISTS[raw] = members
            return members
        return raw

    def integer(self, setting: str) -> int:
        value = self.get(setting)
        assert isinstance(value, int)
        return value

    def flag(self, setting: str) -> bool:
        return bool(self.get(setting))

    def members(self, setting: str) -> tuple[str, ...]:
        value = self.get(setting)
        assert isinstance(value, tuple)
        return value

    def set(self, name: str, value: str, *, force: bool = False) -> SetStatus:
        """Write ``name`` as the CSMS asks (``force``: the firmware itself, readonly allowed)."""
        entry = self._by_name.get(name)
        if entry is None:
            return SetStatus.NOT_SUPPORTED
        if (entry.readonly and not force) or not _check(entry, value):
            return SetStatus.REJECTED
        self._values[name] = value
        self._parsed.pop(entry.setting, None)
        return SetStatus.REBOOT_REQUIRED if entry.reboot_required else SetStatus.ACCEPTED

    def set_setting(self, setting: str, value: str) -> None:
        self.set(self._by_setting[setting].name, value, force=True)
