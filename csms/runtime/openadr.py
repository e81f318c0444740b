"""Demand response: ``csms serve`` as an OpenADR 2.0b VEN (openleadr's client) of a utility's or aggregator's VTN.

The VEN registers, polls, and turns each event for one of its sites (the event's ``resource_id`` targets, else
every site it represents) into a time-bounded lower limit at the site's grid connection, which load management
plans with from the event's start to its end (:meth:`LoadManagement.demand_response`). The sites it represents
are read when an event arrives (``csms serve``: the sites enrolled in the database, by their OpenADR resource id,
or the ``openadr_sites`` start-up override); a resource id none of them has is refused visibly (logged, and the
security event ``openadr_unknown_resource``). ``csms serve`` stores the limits it accepts (``site_curtailments``)
so that whichever process or cluster node plans the site obeys them; in a cluster only the holder of the
``openadr`` lease is the VEN (:class:`VenRunner`, :mod:`csms.runtime.cluster`).

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
from typing import TYPE_CHECKING, Any, Protocol

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


def targeted_sites(event: Mapping[str, Any], represented: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The sites an event is for, and the resource ids it names that the VEN does not speak for: the sites its
    ``resource_id`` targets name (``represented``: resource id → site id), else every site it represents."""
    targets = event.get("targets_by_type") or {}
    named = [str(r) for r in targets.get("resource_id") or []]
    if not named:
        return sorted(set(represented.values())), []
    sites = sorted({represented[r] for r in named if r in represented})
    return sites, [r for r in named if r not in represented]


@dataclass(frozen=True, slots=True)
class Represented:
    """The sites the VEN speaks for when an event arrives: resource id → site id, and each site's own limit at
    its grid connection [kW] (None: not known)."""

    sites: Mapping[str, str]
    limits_kw: Mapping[str, float | None]


#: A site's planned charging power [W] asked of the cluster node that plans it (None: no node does).
PlannedElsewhere = Callable[[str], Awaitable[float | None]]
#: Read the represented sites (``csms serve``: from the database, where the sites' enrolment lives).
Directory = Callable[[], Awaitable[Represented]]


class Curtailer(Protocol):
    """Where the limits of an accepted event go: a planner of this process, or the database and the node that
    plans the site (:class:`StoredCurtailer`)."""

    async def apply(self, site_id: str, event_id: str, plan: list[Step]) -> None: ...

    async def cancel(self, site_id: str, event_id: str) -> None: ...


class LocalCurtailer:
    """The event's limits to this process's load management (a VEN without a database: tests, the twin)."""

    def __init__(self, load_management: LoadManagement) -> None:
        self.load_management = load_management

    async def apply(self, site_id: str, event_id: str, plan: list[Step]) -> None:
        steps = [(p.start, p.end, p.limit_kw) for p in plan if p.limit_kw is not None]
        self.load_management.demand_response(site_id, event_id, steps)  # replaces what the event said before

    async def cancel(self, site_id: str, event_id: str) -> None:
        self.load_management.demand_response(site_id, event_id, [])


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
    "unknown_resource": "openadr_unknown_resource",
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

    def __init__(  # noqa: PLR0913 - one keyword-only option per part the shell plugs in
        self,
        load_management: LoadManagement,
        *,
        vtn_url: str,
        ven_name: str,
        sites: Sequence[str] = (),
        directory: Directory | None = None,
        curtailer: Curtailer | None = None,
        opt_out: str = "never",
        at_risk: DepartureCheck | None = None,
        security: VenSecurity | None = None,
        on_rejected: RejectionSink | None = None,
    ) -> None:
        from openleadr import OpenADRClient  # the client pulls aiohttp and apscheduler: only when configured

        self.load_management = load_management
        #: Who the VEN speaks for, read again for every event (default: ``sites``, each its own resource id).
        self.directory: Directory = directory or self._fixed(list(sites))
        self.curtailer: Curtailer = curtailer or LocalCurtailer(load_management)
        #: In a cluster: a site's planned power [W] from the node that plans it (the telemetry reports).
        self.planned_elsewhere: PlannedElsewhere | None = None
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
        #: Resource ids the VEN offers a telemetry report of (the represented sites, as last read).
        self.reported: dict[str, str] = {}
        #: Seconds between reads of the represented sites for the reports (a site enrolled later gets its own).
        self.report_refresh_s = 30.0
        self._refresher: asyncio.Task[None] | None = None
        #: event id -> (sites, opted in?) — what the VEN did with each event (the API shows it).
        self.events: dict[str, tuple[list[str], str]] = {}

    def _fixed(self, sites: list[str]) -> Directory:
        async def fixed() -> Represented:
            return Represented({s: s for s in sites}, {s: self.load_management.grid_limit_kw(s) for s in sites})

        return fixed

    def _add_reports(self, represented: Represented) -> bool:
        """A telemetry report for each represented resource not offered yet; True when one was added."""
        added = False
        for resource_id, site_id in sorted(represented.sites.items()):
            if self.reported.get(resource_id) == site_id:
                continue
            self.reported[resource_id] = site_id
            self.client.add_report(
                callback=lambda site_id=site_id: self.planned_w(site_id),
                resource_id=resource_id,
                measurement="power_real",
                sampling_rate=timedelta(seconds=10),
                unit="W",
            )
            added = True
        return added

    async def _refresh_reports(self) -> None:
        """Offer the reports of sites enrolled since (registering the reports with the VTN again)."""
        while True:
            await asyncio.sleep(self.report_refresh_s)
            try:
                if self._add_reports(await self.directory()) and self.client.registration_id is not None:
                    await self.client.register_reports(self.client.reports)
                    if self.client.report_queue_task is None:
                        worker = self.client._report_queue_worker()
                        self.client.report_queue_task = asyncio.get_running_loop().create_task(worker)
            except Exception as exc:
                log.warning("OpenADR: could not offer the reports of newly enrolled sites: %s", exc)

    async def start(self) -> None:
        """Register and poll; a VTN that does not answer the registration (down, not there yet) is asked again
        after ``retry_s``, doubling to 5 minutes (openleadr's client gives up after one try)."""
        try:
            self._add_reports(await self.directory())
        except Exception as exc:  # the database away: register without reports, offered once it answers
            log.warning("OpenADR: cannot read the sites the VEN speaks for: %s", exc)
        self._refresher = asyncio.create_task(self._refresh_reports(), name="openadr-reports")
        delay = self.retry_s
        while True:
            await self.client.run()
            if self.client.registration_id is not None:
                log.info("OpenADR: registered with %s as %s", self.client.vtn_url, self.client.ven_name)
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
        if self._refresher is not None:
            self._refresher.cancel()
        with contextlib.suppress(Exception):
            await self.client.stop()

    async def planned_w(self, site_id: str) -> float:
        """What load management plans the site's EVSEs to draw now [W] (0 when no one plans it)."""
        planned = self.load_management.planned_w(site_id)
        if planned is None and self.planned_elsewhere is not None:
            try:
                planned = await self.planned_elsewhere(site_id)
            except Exception as exc:  # the other node away: nothing known
                log.warning("OpenADR: cannot read the planned power of %s from its node: %s", site_id, exc)
        return planned or 0.0

    async def _represented(self, event_id: str) -> Represented | None:
        try:
            return await self.directory()
        except Exception as exc:  # the database away: the sites keep the last event's limits
            log.warning("OpenADR event %s refused: cannot read the sites the VEN speaks for: %s", event_id, exc)
            self.events[event_id] = ([], "optOut: the sites could not be read")
            return None

    async def _targets(self, event_id: str, event: Mapping[str, Any], represented: Represented) -> list[str]:
        """The event's sites; each resource it names that no represented site is named by is refused visibly."""
        sites, unknown = targeted_sites(event, represented.sites)
        for resource_id in unknown:
            await self._reject("EiEvent", "unknown_resource", f"event {event_id} names resource {resource_id!r}, "
                               "which is no site this VEN speaks for (unknown, or not enrolled)")  # fmt: skip
        if not sites:
            log.warning("OpenADR event %s refused: no site of this VEN is targeted", event_id)
            self.events[event_id] = ([], "optOut: no site of this VEN is targeted")
        return sites

    async def _departure_at_risk(self, event_id: str, plans: Mapping[str, list[Step]]) -> bool:
        """The operator's rule allows opting out and a vehicle at one of the sites would miss its departure."""
        if self.opt_out != "when_departure_at_risk" or self.at_risk is None:
            return False
        for site_id, plan in plans.items():
            tightest = [s for s in plan if s.limit_kw is not None]
            if tightest:
                low = min(tightest, key=lambda s: s.limit_kw or 0.0)
                if await self.at_risk(site_id, low.start, max(s.end for s in plan), low.limit_kw or 0.0):
                    log.info("OpenADR event %s: opting out, a departure at %s would be missed", event_id, site_id)
                    return True
        return False

    async def on_event(self, event: Mapping[str, Any]) -> str:
        event_id = str((event.get("event_descriptor") or {}).get("event_id", "?"))
        status = str((event.get("event_descriptor") or {}).get("event_status", "far"))
        represented = await self._represented(event_id)
        if represented is None:
            return "optOut"
        sites = await self._targets(event_id, event, represented)
        if not sites:
            return "optOut"
        if status == "cancelled":
            for site_id in sites:
                await self.curtailer.cancel(site_id, event_id)
            self.events[event_id] = (sites, "cancelled")
            return "optIn"
        try:
            plans = {site_id: steps(event, represented.limits_kw.get(site_id) or 0.0) for site_id in sites}
        except ValueError as exc:
            log.warning("OpenADR event %s refused: %s", event_id, exc)
            self.events[event_id] = (sites, f"optOut: {exc}")
            return "optOut"
        if await self._departure_at_risk(event_id, plans):
            self.events[event_id] = (sites, "optOut: a departure would be missed")
            return "optOut"
        for site_id, plan in plans.items():
            await self.curtailer.apply(site_id, event_id, plan)
        log.info("OpenADR event %s: opted in for %s", event_id, ", ".join(sites))
        self.events[event_id] = (sites, "optIn")
        return "optIn"


@dataclass(frozen=True, slots=True)
class VenSettings:
    vtn_url: str
    ven_name: str = "chargetwin"
    #: The ``openadr_sites`` start-up override: exactly these sites, enrolled or not (empty: the enrolled ones).
    sites: tuple[str, ...] = ()
    opt_out: str = "never"  # or "when_departure_at_risk"
    security: VenSecurity | None = None


#: Tell the other nodes of a cluster what an event says for a site (site, event id, steps; no steps: cancelled).
Publish = Callable[[str, str, list[tuple[float, float, float]]], Awaitable[None]]


class StoredCurtailer:
    """The limits of an accepted event are stored (``site_curtailments``), then given to the site's planner: this
    process's when it plans the site, and through ``publish`` the node that does in a cluster. A process that
    starts, or takes a site's lease over later, reads them with the rest of the site's memory."""

    def __init__(self, session_factory: Any, load_management: LoadManagement, publish: Publish | None = None) -> None:
        self.session_factory = session_factory
        self.load_management = load_management
        self.publish = publish

    async def apply(self, site_id: str, event_id: str, plan: list[Step]) -> None:
        await self._deliver(site_id, event_id, [(p.start, p.end, p.limit_kw) for p in plan if p.limit_kw is not None])

    async def cancel(self, site_id: str, event_id: str) -> None:
        await self._deliver(site_id, event_id, [])

    async def _deliver(self, site_id: str, event_id: str, steps: list[tuple[float, float, float]]) -> None:
        from csms.services import demand_response

        def store() -> None:
            with self.session_factory() as db, db.begin():
                demand_response.record(db, site_id, event_id, steps, datetime.now(UTC))

        await asyncio.to_thread(store)
        self.load_management.demand_response(site_id, event_id, steps)  # False: another node plans it
        if self.publish is not None:
            try:
                await self.publish(site_id, event_id, steps)
            except Exception as exc:  # the holder takes the stored limits in at its next lease round
                log.warning("OpenADR: could not tell the other nodes about event %s: %s", event_id, exc)


def make_ven(
    settings: VenSettings, load_management: LoadManagement, session_factory: Any, publish: Publish | None = None
) -> Ven:
    """The VEN of ``csms serve``: the sites it speaks for are read from the database when an event arrives (the
    enrolled sites, or ``settings.sites``), the limits it accepts are stored, and its opt-out rule reads the
    fleet's departures from the database."""
    from csms.services import demand_response
    from csms.services.fleet_board import departure_at_risk

    missing_warned: set[str] = set()

    async def directory() -> Represented:
        def read() -> Represented:
            with session_factory() as db:
                return Represented(*demand_response.represented(db, settings.sites))

        found = await asyncio.to_thread(read)
        missing = set(settings.sites) - set(found.sites.values()) - missing_warned
        if missing:  # a typo in the override would otherwise leave a site out of every event without a word
            missing_warned.update(missing)
            log.warning(
                "OpenADR: openadr_sites names %s, which no site is: not represented", ", ".join(sorted(missing))
            )
        return found

    async def at_risk(site_id: str, start: float, end: float, limit_kw: float) -> bool:
        def read() -> bool:
            with session_factory() as db:
                return departure_at_risk(db, site_id, _utc(start), _utc(end), limit_kw, datetime.now(UTC))

        return await asyncio.to_thread(read)

    async def rejected(service: str, cause: str, reason: str) -> None:
        await asyncio.to_thread(record_rejection, session_factory, settings.vtn_url, service, cause, reason)

    return Ven(load_management, vtn_url=settings.vtn_url, ven_name=settings.ven_name, directory=directory,
               curtailer=StoredCurtailer(session_factory, load_management, publish), opt_out=settings.opt_out,
               at_risk=at_risk, security=settings.security, on_rejected=rejected)  # fmt: skip


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
    """The VEN of a ``csms serve`` process, if one is configured. A single process runs it from the start; in a
    cluster only the holder of the ``openadr`` lease does (:class:`csms.runtime.cluster.Cluster` calls
    :meth:`activate` as the lease comes and goes), so the VTN hears one VEN whatever the number of nodes."""

    def __init__(self, settings: VenSettings | None) -> None:
        self.settings = settings
        self.ven: Ven | None = None
        self._task: asyncio.Task[None] | None = None
        self._load_management: LoadManagement | None = None
        self._session_factory: Any = None
        self.publish: Publish | None = None
        self.planned_elsewhere: PlannedElsewhere | None = None

    @property
    def configured(self) -> bool:
        return self.settings is not None

    @property
    def active(self) -> bool:
        return self.ven is not None

    def start(self, load_management: LoadManagement, session_factory: Any, *, clustered: bool = False) -> None:
        """Once the sites are planned; ``clustered``: wait for :meth:`activate` (the lease)."""
        self._load_management, self._session_factory = load_management, session_factory
        if self.settings is not None and not clustered:
            self._run()

    def _run(self) -> None:
        assert self.settings is not None and self._load_management is not None
        self.ven = make_ven(self.settings, self._load_management, self._session_factory, self.publish)
        self.ven.planned_elsewhere = self.planned_elsewhere
        self._task = asyncio.create_task(self.ven.start(), name="openadr-ven")

    async def activate(self, active: bool) -> None:
        """Be the VEN (this node took the ``openadr`` lease) or stop being it (the lease lapsed or was released)."""
        if self.settings is None or self._load_management is None or active == self.active:
            return
        if active:
            log.info("OpenADR: this node is the VEN now")
            self._run()
        else:
            log.info("OpenADR: this node is no longer the VEN")
            await self.stop()

    async def stop(self) -> None:
        ven, task = self.ven, self._task
        self.ven, self._task = None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if ven is not None:
            await ven.stop()
