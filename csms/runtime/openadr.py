"""Demand response: ``csms serve`` as an OpenADR 2.0b VEN (openleadr's client) of a utility's or aggregator's VTN.

The VEN registers, polls, and turns each event for one of its sites (the event's ``resource_id`` targets, else
every site it represents) into a time-bounded lower limit at the site's grid connection, which load management
plans with from the event's start to its end (:meth:`LoadManagement.curtail`):

* ``SIMPLE`` / ``level`` 1, 2, 3 → 75 %, 50 %, 25 % of the site's limit (0: no reduction);
* ``LOAD_DISPATCH`` / ``setpoint`` → that many kW; ``delta`` → the limit less that many kW;
* ``LOAD_CONTROL`` / ``x-loadControlCapacity`` → that fraction of the limit.

Each interval of an event is its own step. The VEN answers ``optIn``, or ``optOut`` when the operator's rule
(``openadr_opt_out = "when_departure_at_risk"``) allows it and a fleet vehicle at the site would miss its
departure under the lower limit. It reports the site's planned charging power back (``TELEMETRY_USAGE``).

**Signatures.** Given the VTN certificate's fingerprint (``openadr_vtn_fingerprint``) the VEN accepts only
messages the VTN signed with that certificate, recently (openleadr's ReplayProtect: a signature older than a few
seconds has expired) and never replayed. With its own certificate and key it signs what it sends and speaks TLS
with them to the VTN (verified against ``openadr_ca_file``). A message that fails is ignored — the sites keep
the limits of the last event the VEN accepted — and the rejection is logged and recorded as a security event
(``GET /security-events``: ``openadr_wrong_signature``, ``openadr_expired_signature``, … saying why).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csms.core.plugins.load_management import LoadManagement

log = logging.getLogger(__name__)

SIMPLE_LEVELS = {0: None, 1: 0.75, 2: 0.5, 3: 0.25}


@dataclass(frozen=True, slots=True)
class Step:
    """One interval of an event: the site limit [kW] (None: no reduction) from ``start`` to ``end``."""

    start: float
    end: float
    limit_kw: float | None


def steps(event: Mapping[str, Any], base_kw: float) -> list[Step]:
    """The limit steps of an event for a site whose normal limit is ``base_kw``."""
    active = event.get("active_period") or {}
    start = _when(active.get("dtstart"))
    out: list[Step] = []
    for signal in event.get("event_signals") or []:
        cursor = start
        for interval in signal.get("intervals") or []:
            begin = _when(interval.get("dtstart")) if interval.get("dtstart") else cursor
            length = _seconds(interval.get("duration")) or _seconds(active.get("duration"))
            end = begin + length
            out.append(Step(begin, end, _limit(signal, float(interval.get("signal_payload", 0.0)), base_kw)))
            cursor = end
    return out


def _limit(signal: Mapping[str, Any], value: float, base_kw: float) -> float | None:
    name, kind = str(signal.get("signal_name", "")).upper(), str(signal.get("signal_type", ""))
    if name == "SIMPLE":
        share = SIMPLE_LEVELS.get(round(value), 0.25)
        return None if share is None else base_kw * share
    if name == "LOAD_DISPATCH":
        return max(0.0, base_kw - value) if kind == "delta" else max(0.0, value)
    if name == "LOAD_CONTROL":
        return base_kw * min(1.0, max(0.0, value))
    raise ValueError(f"signal {name}/{kind} is not one the VEN acts on")


def _when(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise ValueError(f"not a time: {value!r}")


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else 0.0


def targeted_sites(event: Mapping[str, Any], sites: Sequence[str]) -> list[str]:
    """The sites an event is for: those its resource targets name, else all the VEN represents."""
    targets = event.get("targets_by_type") or {}
    named = [r for r in targets.get("resource_id", []) if r in sites]
    return named or list(sites)


#: (site, event start, event end, limit kW) -> True when a vehicle would miss its departure.
DepartureCheck = Callable[[str, float, float, float], Awaitable[bool]]
#: (the OpenADR service the answer came from, the cause (a key of REJECTIONS), why) -> recorded for the operator.
RejectionSink = Callable[[str, str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class VenSecurity:
    """How the VEN trusts the VTN and proves itself: the VTN certificate's fingerprint (as openleadr prints it,
    ``AA:BB:…``: messages must be signed with it), and optionally the VEN's own certificate and key (it signs and
    speaks TLS with them) and the CA file the VTN's TLS certificate is checked against."""

    vtn_fingerprint: str | None = None
    cert: str | None = None
    key: str | None = None
    ca_file: str | None = None
    passphrase: str | None = field(default=None, repr=False)


#: Per request: the answer the VTN sent (None until one came) and whether it passed the checks.
_answer: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("openadr_answer", default=None)


#: The security event types of refused VTN answers, by cause.
REJECTIONS = {
    "bad_message": "openadr_bad_message",
    "unsigned": "openadr_unsigned",
    "wrong_signature": "openadr_wrong_signature",
    "expired_signature": "openadr_expired_signature",
    "replayed": "openadr_replayed",
}


def rejection_reason(content: bytes | str, vtn_fingerprint: str | None) -> tuple[str, str]:
    """Why openleadr refused a VTN's answer (a key of :data:`REJECTIONS` and the text), worked out again without
    touching its replay cache."""
    from openleadr import messaging, utils

    try:
        tree = messaging.validate_xml_schema(utils.ensure_bytes(content))
    except Exception as exc:
        return "bad_message", f"not a valid OpenADR 2.0b message: {exc}"
    if tree.find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate") is None:
        return "unsigned", "unsigned: the VEN accepts only messages the VTN signed"
    cert = utils.extract_pem_cert(tree)
    fingerprint = utils.certificate_fingerprint(cert)
    if vtn_fingerprint and fingerprint != vtn_fingerprint:
        text = f"wrong signature: signed by certificate {fingerprint}, not the VTN's {vtn_fingerprint}"
        return "wrong_signature", text
    try:
        messaging.VERIFIER.verify(tree, x509_cert=utils.ensure_bytes(cert), expect_references=2)
    except Exception as exc:
        return "wrong_signature", f"wrong signature: it does not verify ({exc})"
    ns = "{http://openadr.org/oadr-2.0b/2012/07/xmldsig-properties}"
    stamp, nonce = tree.findtext(f".//{ns}timestamp"), tree.findtext(f".//{ns}nonce")
    if stamp is None or nonce is None:
        return "bad_message", "the signature has no ReplayProtect timestamp and nonce"
    signed = utils.parse_datetime(stamp)
    limit = messaging.REPLAY_PROTECT_MAX_TIME_DELTA
    if signed < datetime.now(UTC) - limit:
        seconds = limit.total_seconds()
        return "expired_signature", f"expired signature: signed at {signed.isoformat()}, more than {seconds:g} s ago"
    if (signed, nonce) in messaging.NONCE_CACHE:
        return "replayed", "replayed: this signature's timestamp and nonce were seen before"
    return "bad_message", "refused by the OpenADR client"


class Ven:
    """The VEN: the openleadr client, the event handler and the telemetry report."""

    def __init__(
        self,
        load_management: LoadManagement,
        *,
        vtn_url: str,
        ven_name: str,
        sites: Sequence[str] | None,
        opt_out: str = "never",
        at_risk: DepartureCheck | None = None,
        security: VenSecurity | None = None,
        on_rejected: RejectionSink | None = None,
    ) -> None:
        from openleadr import OpenADRClient  # the client pulls aiohttp and apscheduler: only when configured

        self.load_management = load_management
        #: The sites the VEN speaks for; None: every site load management plans when an event comes (a site made
        #: through the API after the start included).
        self.named_sites = None if sites is None else list(sites)
        self.opt_out = opt_out
        self.at_risk = at_risk
        self.security = security or VenSecurity()
        self.on_rejected = on_rejected
        sec = self.security
        signs = sec.cert is not None and sec.key is not None
        self.client = OpenADRClient(
            ven_name=ven_name, vtn_url=vtn_url, allow_jitter=False, disable_signature=not signs, cert=sec.cert,
            key=sec.key, passphrase=sec.passphrase, ca_file=sec.ca_file, vtn_fingerprint=sec.vtn_fingerprint,
            show_fingerprint=False,
        )  # fmt: skip
        self.client.add_handler("on_event", self.on_event)
        self.client.add_hook("before_schema_validation", self._received)
        self.client.add_hook("before_parse_xml", self._passed)
        self._request = self.client._perform_request  # openleadr's own request
        self.client._perform_request = self._perform_request  # wrapped: see the answers openleadr refuses
        #: Seconds before asking a VTN that did not register this VEN again (doubling).
        self.retry_s = 5.0
        #: Answers the VEN refused: (service, reason), the latest last (the security events hold them all).
        self.rejected: list[tuple[str, str]] = []
        for site_id in self.sites:  # the telemetry offered at registration: the sites planned then
            self.client.add_report(
                callback=lambda site_id=site_id: self.planned_kw(site_id),
                resource_id=site_id,
                measurement="power_real",
                sampling_rate=timedelta(seconds=10),
                unit="W",
            )
        #: event id -> (sites, opted in?) — what the VEN did with each event (the API shows it).
        self.events: dict[str, tuple[list[str], str]] = {}

    @property
    def sites(self) -> list[str]:
        if self.named_sites is not None:
            return list(self.named_sites)
        return sorted(self.load_management.manager.planners)

    async def start(self) -> None:
        """Register and poll; a VTN that does not answer the registration (down, not there yet) is asked again
        after ``retry_s``, doubling to 5 minutes (openleadr's client gives up after one try)."""
        delay = self.retry_s
        while True:
            await self.client.run()
            if self.client.registration_id is not None:
                return
            log.warning("OpenADR: the VTN did not register this VEN; trying again in %g s", delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 300.0)
            self.client.client_session = None  # closed by the failed run: the next one opens its own

    async def _perform_request(self, service: str, message: Any) -> Any:
        """openleadr's request, noting whether the answer that came passed its checks: one that did not is
        ignored by openleadr (the plan keeps the last good event) and recorded here as a rejection."""
        answer: list[Any] = [None, False]
        _answer.set(answer)
        try:
            return await self._request(service, message)
        finally:
            _answer.set(None)
            if answer[0] is not None and not answer[1]:
                await self._reject(service, *rejection_reason(answer[0], self.security.vtn_fingerprint))

    def _received(self, content: str) -> None:
        answer = _answer.get()
        if answer is not None:
            answer[0] = content

    def _passed(self, content: str) -> None:
        answer = _answer.get()
        if answer is not None:
            answer[1] = True

    async def _reject(self, service: str, cause: str, reason: str) -> None:
        log.warning("OpenADR: refused the VTN's answer to %s: %s", service, reason)
        if self.on_rejected is not None:
            try:
                await self.on_rejected(service, cause, reason)
            except Exception:
                log.exception("OpenADR: could not record the rejection")
        self.rejected.append((service, reason))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.stop()

    def planned_kw(self, site_id: str) -> float:
        """What load management plans the site's EVSEs to draw now [W]."""
        planner = self.load_management.manager.planners.get(site_id)
        if planner is None:
            return 0.0
        return float(sum(w for k, w in self.load_management.limits_now().items() if k in planner.site.index))

    async def on_event(self, event: Mapping[str, Any]) -> str:
        event_id = str((event.get("event_descriptor") or {}).get("event_id", "?"))
        status = str((event.get("event_descriptor") or {}).get("event_status", "far"))
        sites = targeted_sites(event, self.sites)
        if status == "cancelled":
            for site_id in sites:
                self._cancel(site_id, event_id)
            self.events[event_id] = (sites, "cancelled")
            return "optIn"
        try:
            plans = {site_id: steps(event, self.load_management.grid_limit_kw(site_id) or 0.0) for site_id in sites}
        except ValueError as exc:
            log.warning("OpenADR event %s refused: %s", event_id, exc)
            self.events[event_id] = (sites, f"optOut: {exc}")
            return "optOut"
        if self.opt_out == "when_departure_at_risk" and self.at_risk is not None:
            for site_id, plan in plans.items():
                tightest = [s for s in plan if s.limit_kw is not None]
                if tightest:
                    low = min(tightest, key=lambda s: s.limit_kw or 0.0)
                    if await self.at_risk(site_id, low.start, max(s.end for s in plan), low.limit_kw or 0.0):
                        log.info("OpenADR event %s: opting out, a departure at %s would be missed", event_id, site_id)
                        self.events[event_id] = (sites, "optOut: a departure would be missed")
                        return "optOut"
        for site_id, plan in plans.items():
            self._apply(site_id, event_id, plan)
        self.events[event_id] = (sites, "optIn")
        return "optIn"

    def _apply(self, site_id: str, event_id: str, plan: list[Step]) -> None:
        self._cancel(site_id, event_id)  # a modified event replaces what it said before
        for i, step in enumerate(plan):
            if step.limit_kw is not None:
                self.load_management.curtail(site_id, f"{event_id}#{i}", step.start, step.end, step.limit_kw)

    def _cancel(self, site_id: str, event_id: str) -> None:
        for c in self.load_management.curtailments(site_id):
            if c.event_id.startswith(f"{event_id}#"):
                self.load_management.curtail(site_id, c.event_id, c.start, c.end, None)


@dataclass(frozen=True, slots=True)
class VenSettings:
    vtn_url: str
    ven_name: str = "chargetwin"
    sites: tuple[str, ...] = ()  # empty: every site load management plans
    opt_out: str = "never"  # or "when_departure_at_risk"
    security: VenSecurity | None = None


def make_ven(settings: VenSettings, load_management: LoadManagement, session_factory: Any) -> Ven:
    """The VEN of ``csms serve``: its opt-out rule reads the fleet's departures from the database."""
    from csms.services.fleet_board import departure_at_risk

    async def at_risk(site_id: str, start: float, end: float, limit_kw: float) -> bool:
        def read() -> bool:
            with session_factory() as db:
                return departure_at_risk(db, site_id, _utc(start), _utc(end), limit_kw, datetime.now(UTC))

        return await asyncio.to_thread(read)

    async def rejected(service: str, cause: str, reason: str) -> None:
        await asyncio.to_thread(record_rejection, session_factory, settings.vtn_url, service, cause, reason)

    sites = list(settings.sites) or None  # none named: every site planned when an event comes
    return Ven(load_management, vtn_url=settings.vtn_url, ven_name=settings.ven_name, sites=sites,
               opt_out=settings.opt_out, at_risk=at_risk, security=settings.security,
               on_rejected=rejected)  # fmt: skip


def record_rejection(session_factory: Any, vtn_url: str, service: str, cause: str, reason: str) -> None:
    """The operator's record of an answer the VEN refused: a security event of its cause's type (repeats of one
    cause within a minute are one event that counts them)."""
    from urllib.parse import urlsplit

    from csms.services import security_events

    with session_factory() as db:
        security_events.record(db, type=REJECTIONS[cause], at=datetime.now(UTC), source=urlsplit(vtn_url).netloc,
                               detail={"vtn_url": vtn_url, "service": service, "reason": reason[:500]})  # fmt: skip
        db.commit()


def _utc(posix: float) -> datetime:
    return datetime.fromtimestamp(posix, UTC)


class VenRunner:
    """The VEN of a ``csms serve`` process, if one is configured: started once the sites are planned."""

    def __init__(self, settings: VenSettings | None) -> None:
        self.settings = settings
        self.ven: Ven | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, load_management: LoadManagement, session_factory: Any) -> None:
        if self.settings is not None:
            self.ven = make_ven(self.settings, load_management, session_factory)
            self._task = asyncio.create_task(self.ven.start(), name="openadr-ven")

    async def stop(self) -> None:
        if self.ven is not None:
            await self.ven.stop()
        if self._task is not None:
            self._task.cancel()
