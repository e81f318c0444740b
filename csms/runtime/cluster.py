"""Scale-out: several ``csms serve`` processes (nodes) sharing PostgreSQL, with API calls routed through Redis to
the node that holds the station's socket.

* **Registry.** ``station:{id}`` → node id, with a TTL (``SET … EX``). A node writes it when a station connects
  (the newest connection wins), deletes it on disconnect only if it still names this node, and re-arms the
  TTL of its stations every ``ttl/3`` (only keys that still name it, or have expired, in one Lua call per
  batch). ``node:{id}`` is the node's own liveness key. A process that dies stops refreshing, so its
  entries expire after at most ``ttl``; its chargers usually reconnect elsewhere sooner and overwrite them.
* **Routing.** An API call for a station whose socket is local goes straight to :meth:`Gateway.call`.
  Otherwise the registry names the owner, and the request is published on the owner's channel
  ``csms:node:{owner}`` (Redis pub/sub) with this node's reply channel; the owner runs the call on its
  gateway and publishes the outcome (the same JSON the API returns) to ``csms:reply:{node}``. No registry
  entry, or nobody subscribed to the owner's channel (it died), is "not connected" (409).
* **Disconnects.** When the operator changes a station's credentials, profile or registration, the API's node
  publishes ``{"type": "disconnect"}`` on the owner's channel and the owner ends the socket.
* **Leases.** Each site's load manager and the alert engine run on one node at a time, the holder of a lease
  (:mod:`csms.runtime.leases`: ``lease:site:{id}``, ``lease:alerts``). Every ``lease_ttl/3`` each node claims
  every lease (the sites' ids come from the database) and re-arms those it holds; the load-management plugin is
  told which sites it owns and catches up with their stations on other nodes from the store
  (:meth:`LoadManagement.sync`), and its commands to those stations are routed as above, fenced by the lease's
  token (a node refuses a command fenced by an older token than one it has seen: it comes from a node that lost
  the lease). Nodes that do not hold ``alerts`` relay their stations' alert events to the holder on
  ``csms:alerts``. A clean stop releases the leases and says so on ``csms:leases``: the others claim at once.
* **Demand response.** With an OpenADR VTN configured, the nodes also compete for ``lease:openadr``: its holder
  alone is the VEN (:class:`csms.runtime.openadr.VenRunner`), so the VTN hears one VEN; a node that takes the
  lease over (the holder died: within the lease TTL) registers again. The limits of an event it accepts are
  stored (``site_curtailments``) and published on ``csms:demand-response``; the node holding the site's lease
  applies them (:meth:`LoadManagement.demand_response`), and a node that takes a site over later reads them
  with the site's memory (and at every lease round from the database: a lost message is caught up).
* Without ``--broker`` none of this exists: the gateway behaves exactly as a single process.

Redis pub/sub is fire-and-forget: a request lost with a crashing owner times out at the caller
(call timeout + ``reply_slack_s``) and is reported as ``timeout``, which is what the API already says when
a charger does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
import redis
import redis.asyncio as aioredis

from csms.alerts import engine as al
from csms.alerts import wire
from csms.gateway.server import Gateway, StationNotConnected
from csms.ocpp.errors import ErrorKind, LocalCallError
from csms.runtime.leases import FenceBook, Leases
from csms.services import stations
from csms.services.load_memory import site_ids

if TYPE_CHECKING:
    from csms.core.plugins.alerts import AlertMonitor
    from csms.core.plugins.load_management import Answered, LoadManagement
    from csms.loadmgmt.planner import Command
    from csms.runtime.openadr import VenRunner

log = logging.getLogger(__name__)

ALERTS_LEASE = "alerts"
ALERTS_CHANNEL = "csms:alerts"
LEASES_CHANNEL = "csms:leases"
LIVE_CHANNEL = "csms:live"  # which station changed, for the console's live streams on every node
OPENADR_LEASE = "openadr"  # the one node that is the OpenADR VEN
DEMAND_RESPONSE_CHANNEL = "csms:demand-response"  # what an event the VEN accepted says for a site
CHANNELS = (ALERTS_CHANNEL, LEASES_CHANNEL, LIVE_CHANNEL, DEMAND_RESPONSE_CHANNEL)
#: Connections to the broker a node opens at most (redis-py's default) and how long a write waits for one to be free.
REDIS_CONNECTIONS = 100
REDIS_WAIT_S = 30.0

_REFRESH = """
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] or not owner then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
  end
end
return #KEYS
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Cluster:
    """This node's membership: the station registry and the command channel, on one Redis."""

    def __init__(  # noqa: PLR0913 - one keyword-only option per cluster setting and plugin served
        self,
        gateway: Gateway,
        broker_url: str,
        node_id: str | None = None,
        *,
        ttl_s: int = 15,
        reply_slack_s: float = 5.0,
        batch: int = 500,
        lease_ttl_s: float = 10.0,
        load_management: LoadManagement | None = None,
        monitor: AlertMonitor | None = None,
        ven: VenRunner | None = None,
    ) -> None:
        if not broker_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"--broker must be a redis:// URL, got {broker_url!r}")
        self.gateway = gateway
        self.broker_url = broker_url
        self.node_id = node_id or default_node_id()
        self.ttl_s = max(3, int(ttl_s))
        self.reply_slack_s = reply_slack_s
        self.batch = batch
        # A blocking pool: a burst of registry writes (thousands of stations reconnecting at once) waits for a free
        # connection instead of failing with "Too many connections", which dropped registrations and console
        # relays under a 50,000-station ramp.
        self.redis = aioredis.Redis.from_pool(
            aioredis.BlockingConnectionPool.from_url(
                broker_url, decode_responses=True, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_S
            )
        )
        # The sync client serves the threadpool's sync endpoints (the stations' "connected" flag).
        self.sync_redis = redis.Redis.from_url(broker_url, decode_responses=True, socket_timeout=2)
        self._refresh = self.redis.register_script(_REFRESH)
        self._release = self.redis.register_script(_RELEASE)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.leases = Leases(self.redis, self.node_id, lease_ttl_s)
        self.fences = FenceBook()
        self.load_management = load_management
        self.monitor = monitor
        self.ven = ven if ven is not None and ven.configured else None
        #: Another node's station changed: tell this node's console streams (the API's live feed).
        self.on_live: Callable[[str, frozenset[str]], None] | None = None
        self._sites: list[str] = []
        self._wake = asyncio.Event()
        self._lease_keeper: asyncio.Task[None] | None = None
        self._leaving = False
        self._member_since: float | None = None  # time.monotonic() of the last registry heartbeat that worked

    @staticmethod
    def station_key(station_id: str) -> str:
        return f"station:{station_id}"

    @property
    def channel(self) -> str:
        return f"csms:node:{self.node_id}"

    @property
    def reply_channel(self) -> str:
        return f"csms:reply:{self.node_id}"

    # ---- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.redis.ping()
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel, self.reply_channel, *CHANNELS)
        self._listener = asyncio.create_task(self._listen(), name="csms-cluster-listen")
        await self._refresh_all()
        self._heartbeat = asyncio.create_task(self._keep_alive(), name="csms-cluster-heartbeat")
        self.gateway.cluster = self
        if self.load_management is not None:
            self.load_management.router = self
            self.load_management.own(set())  # until a lease says otherwise
        if self.monitor is not None:
            self.monitor.relay = self._relay_alerts
            self.monitor.router = self
            self.monitor.activate(False)
        if self.ven is not None:
            self.ven.publish = self.publish_demand_response
            self.ven.planned_elsewhere = self.planned_w
        await self._lease_round()  # the first node up takes the leases before its stations connect
        self._lease_keeper = asyncio.create_task(self._keep_leases(), name="csms-cluster-leases")
        log.info(
            "node %s joined the cluster on %s (registry TTL %d s, lease TTL %g s)",
            self.node_id,
            self.broker_url,
            self.ttl_s,
            self.leases.ttl_s,
        )

    async def release_leases(self) -> list[str]:
        """Stop running what the leases guard and give them back at once, telling the other nodes (a clean
        shutdown: they take over without waiting for the TTL)."""
        self._leaving = True
        if self._lease_keeper is not None:
            self._lease_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lease_keeper
        if self.load_management is not None:
            self.load_management.own(set())
        if self.monitor is not None:
            self.monitor.activate(False)
        if self.ven is not None:
            with contextlib.suppress(Exception):
                await self.ven.activate(False)  # before the lease goes: never two VENs
        released: list[str] = []
        try:
            released = await self.leases.release_all()
            if released:
                notice = orjson.dumps({"type": "released", "node": self.node_id}).decode()
                await self.redis.publish(LEASES_CHANNEL, notice)
        except Exception as exc:  # Redis away: the leases lapse by themselves after the TTL
            log.warning("could not release leases: %s", exc)
        if released:
            log.info("node %s released leases %s", self.node_id, ", ".join(released))
        return released

    async def stop(self) -> None:
        if not self._leaving:
            await self.release_leases()
        self.gateway.cluster = None
        for task in (self._heartbeat, self._listener, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            # A clean stop gives its stations back at once (a crash leaves them to expire).
            for station_id in list(self.gateway.links):
                await self._release(keys=[self.station_key(station_id)], args=[self.node_id])
            await self.redis.delete(f"node:{self.node_id}")
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self.redis.aclose()
        self.sync_redis.close()

    # ---- registry (called by the gateway) ----------------------------------------------------------------
    def station_connected(self, station_id: str) -> None:
        self._spawn(self.redis.set(self.station_key(station_id), self.node_id, ex=self.ttl_s))

    def station_disconnected(self, station_id: str) -> None:
        self._spawn(self._release(keys=[self.station_key(station_id)], args=[self.node_id]))

    def is_connected_anywhere(self, station_id: str) -> bool:
        """Sync (the API's threadpool): does any node hold the station's socket?"""
        try:
            return self.sync_redis.get(self.station_key(station_id)) is not None
        except redis.RedisError:
            return False

    async def owner(self, station_id: str) -> str | None:
        # decode_responses=True: redis-py annotates the reply as bytes | str whatever the client's setting.
        return cast(str | None, await self.redis.get(self.station_key(station_id)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("cluster registry update failed: %s", task.exception())

    async def _refresh_all(self) -> None:
        await self.redis.set(f"node:{self.node_id}", str(time.time()), ex=self.ttl_s)
        self._member_since = time.monotonic()
        stations = list(self.gateway.links)
        for i in range(0, len(stations), self.batch):
            keys = [self.station_key(s) for s in stations[i : i + self.batch]]
            await self._refresh(keys=keys, args=[self.node_id, self.ttl_s])

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self._refresh_all()
            except Exception as exc:  # Redis away for a moment: keep serving local stations, retry
                log.warning("cluster heartbeat failed: %s", exc)

    # ---- leases ------------------------------------------------------------------------------------------
    def holds_membership(self) -> bool:
        """Is this node a live member: its liveness key re-armed within the registry TTL (for readiness)?"""
        return self._member_since is not None and time.monotonic() - self._member_since < self.ttl_s

    def holds(self, lease: str) -> bool:
        """Does this node hold the lease (``alerts``, ``site:{id}``) now?"""
        return self.leases.holds(lease)

    def lease_state(self) -> dict[str, Any]:
        """What this node runs, for readiness checks and operators: member or not, leases held with fences."""
        return {
            "node": self.node_id,
            "member": self.holds_membership(),
            "leases": {name: held.fence for name, held in sorted(self.leases.held.items()) if self.holds(name)},
        }

    async def _keep_leases(self) -> None:
        while not self._leaving:
            timeout = self.leases.refresh_s
            lapse = self.leases.next_lapse()
            if lapse is not None:  # wake when a lease we could not re-arm lapses, to stop acting on it at once
                timeout = max(0.05, min(timeout, lapse - time.monotonic() + 0.01))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            await self._lease_round()

    async def _lease_round(self) -> None:
        try:
            self._sites = await asyncio.to_thread(self._read_sites)
        except Exception as exc:  # the database away: compete for the sites known so far
            log.warning("cannot list the sites: %s", exc)
        try:
            singles = [ALERTS_LEASE] if self.ven is None else [ALERTS_LEASE, OPENADR_LEASE]
            await self.leases.claim([*singles, *(f"site:{s}" for s in self._sites)])
        except Exception as exc:  # Redis away: each lease lapses at its own time (holds() says so)
            log.warning("cannot claim leases: %s", exc)
        try:
            await self._apply_leases()
        except Exception as exc:
            log.warning("cannot apply leases: %s", exc)

    def _read_sites(self) -> list[str]:
        with self.gateway.session_factory() as db:
            return site_ids(db)

    async def _apply_leases(self) -> None:
        if self._leaving:
            return
        lm = self.load_management
        if lm is not None:
            lm.own({n.removeprefix("site:") for n in list(self.leases.held) if n.startswith("site:") and self.holds(n)})
            elsewhere = lm.stations_elsewhere()
            if elsewhere:
                lm.sync(await self._held_elsewhere(elsewhere))
            lm.sync_demand_response()  # demand-response limits whose message was lost
        active = self.holds(ALERTS_LEASE)
        if self.monitor is not None and active != self.monitor.active:
            self.monitor.activate(active, await self._online_everywhere() if active else [])
        if self.ven is not None:
            await self.ven.activate(self.holds(OPENADR_LEASE))

    async def _online_everywhere(self) -> list[tuple[str, str]]:
        """Every station some node holds the socket of, with its OCPP version."""
        ids = [key.removeprefix("station:") async for key in self.redis.scan_iter(match="station:*", count=1000)]

        def read() -> dict[str, str]:
            with self.gateway.session_factory() as db:
                return stations.versions(db, ids)

        versions = await asyncio.to_thread(read)
        return [(s, versions[s]) for s in sorted(ids) if s in versions]

    def relay_live(self, station_id: str, kinds: frozenset[str]) -> None:
        """Tell the other nodes' console streams that a station here changed (they render it from the store)."""
        message = {"type": "live", "node": self.node_id, "station": station_id, "kinds": sorted(kinds)}
        self._spawn(self.redis.publish(LIVE_CHANNEL, orjson.dumps(message).decode()))

    async def publish_demand_response(
        self, site_id: str, event_id: str, steps: list[tuple[float, float, float]]
    ) -> None:
        """What an event the VEN (this node) accepted says for a site, to the node that plans it (already stored:
        a node that takes the site over later reads it from the database)."""
        message = {"type": "demand_response", "node": self.node_id, "site": site_id, "event": event_id,
                   "steps": [list(step) for step in steps]}  # fmt: skip
        await self.redis.publish(DEMAND_RESPONSE_CHANNEL, orjson.dumps(message).decode())

    async def planned_w(self, site_id: str) -> float | None:
        """A site's planned charging power [W], asked of the node holding its lease (the VEN's telemetry reports);
        None when no node plans it or its node does not answer within ``reply_slack_s``."""
        lm = self.load_management
        owner = cast(str | None, await self.redis.get(Leases.key(f"site:{site_id}")))
        if owner is None or lm is None:
            return None
        if owner == self.node_id:
            return lm.planned_w(site_id)
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {"type": "planned", "id": request_id, "reply_to": self.reply_channel, "site": site_id}
        try:
            if not await self.redis.publish(f"csms:node:{owner}", orjson.dumps(message).decode()):
                return None
            reply = await asyncio.wait_for(future, self.reply_slack_s)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request_id, None)
        planned = reply.get("planned_w")
        return None if planned is None else float(planned)

    async def _answer_planned(self, body: dict[str, Any]) -> None:
        lm = self.load_management
        planned = None if lm is None else lm.planned_w(str(body.get("site", "")))
        reply = {"type": "reply", "id": body.get("id"), "planned_w": planned}
        await self.redis.publish(str(body["reply_to"]), orjson.dumps(reply).decode())

    def _relay_alerts(self, events: list[al.Event]) -> None:
        message = orjson.dumps({"type": "alerts", "events": wire.encode(events)}).decode()
        self._spawn(self.redis.publish(ALERTS_CHANNEL, message))

    def route(self, command: Command, site_id: str, answered: Answered) -> None:
        """Load management's command to a station on another node, fenced by the site's lease."""
        self._fenced_call(
            f"site:{site_id}",
            command.station_id,
            command.action,
            command.payload,
            lambda outcome: answered(str(outcome.get("outcome")), outcome.get("payload")),
        )

    def locate(self, station_ids: list[str], located: Callable[[Mapping[str, bool]], None]) -> None:
        """Which of ``station_ids`` another node holds the socket of (load management taking a site over)."""
        self._spawn(self._locate(station_ids, located))

    async def _locate(self, station_ids: list[str], located: Callable[[Mapping[str, bool]], None]) -> None:
        try:
            where = await self._held_elsewhere(station_ids)
        except Exception as exc:  # Redis away: plan as a restarted process would, with those stations unseen
            log.warning("cannot locate stations: %s", exc)
            where = dict.fromkeys(station_ids, False)
        located(where)

    async def _held_elsewhere(self, station_ids: list[str]) -> dict[str, bool]:
        owners = await self.redis.mget([self.station_key(s) for s in station_ids])
        return {s: o is not None and o != self.node_id for s, o in zip(station_ids, owners, strict=True)}

    def remediate(
        self, station_id: str, action: str, payload: dict[str, Any], answered: Callable[[dict[str, Any]], None]
    ) -> None:
        """The alert engine's remediation (a Reset) to a station on another node, fenced by the alerts lease."""
        self._fenced_call(ALERTS_LEASE, station_id, action, payload, answered)

    def _fenced_call(
        self,
        lease: str,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        answered: Callable[[dict[str, Any]], None],
    ) -> None:
        fence = self.leases.fence(lease)
        if fence is None:
            return  # the lease lapsed: this node does not speak for it any more
        self._spawn(self._call_fenced(station_id, action, payload, (lease, fence), answered))

    async def _call_fenced(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        fence: tuple[str, int],
        answered: Callable[[dict[str, Any]], None],
    ) -> None:
        try:
            outcome = await self.call(station_id, action, payload, None, fence=fence)
        except StationNotConnected:
            outcome = {"action": action, "outcome": "not_connected"}
        except LocalCallError as exc:
            outcome = {"action": action, "outcome": "error", "error": {"description": exc.description}}
        answered(outcome)

    # ---- routing -----------------------------------------------------------------------------------------
    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout_s: float | None,
        fence: tuple[str, int] | None = None,
    ) -> dict[str, Any]:
        """Run a call on the node that holds the station's socket; the API's JSON outcome. ``fence``: the lease
        and token the call is sent under (load management), checked by the owner.

        Raises:
            StationNotConnected: no node holds it.  LocalCallError: the owner refused the payload.
        """
        if station_id in self.gateway.links:
            return (await self.gateway.call(station_id, action, payload, timeout_s)).as_dict()
        owner = await self.owner(station_id)
        if owner is None or owner == self.node_id:
            raise StationNotConnected(station_id)
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {
            "type": "call",
            "id": request_id,
            "reply_to": self.reply_channel,
            "station": station_id,
            "action": action,
            "payload": payload,
            "timeout": timeout_s,
            "fence": fence,
        }
        try:
            receivers = await self.redis.publish(f"csms:node:{owner}", orjson.dumps(message).decode())
            if receivers == 0:
                raise StationNotConnected(station_id)  # the owner is gone; its entry has not expired yet
            wait = (timeout_s or self.gateway.config.call_timeout_s) + self.reply_slack_s
            try:
                reply = await asyncio.wait_for(future, wait)
            except TimeoutError:
                return {"action": action, "message_id": None, "outcome": "timeout"}
        finally:
            self._waiting.pop(request_id, None)
        if reply.get("status") == "not_connected":
            raise StationNotConnected(station_id)
        if reply.get("status") == "fenced":
            return {"action": action, "message_id": None, "outcome": "fenced"}
        if reply.get("status") == "invalid":
            raise LocalCallError(ErrorKind(reply["kind"]), reply["detail"])
        return reply["result"]

    async def disconnect(self, station_id: str, reason: str) -> None:
        """Ask the node that holds the station's socket to end it (fire-and-forget, like the registry: a node
        that is gone holds no socket)."""
        if self.gateway.disconnect(station_id, reason):
            return
        owner = await self.owner(station_id)
        if owner is None or owner == self.node_id:
            return
        message = {"type": "disconnect", "station": station_id, "reason": reason}
        await self.redis.publish(f"csms:node:{owner}", orjson.dumps(message).decode())

    async def _listen(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster channel failed (%s); resubscribing", exc)
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    await self._pubsub.subscribe(self.channel, self.reply_channel, *CHANNELS)

    def _dispatch(self, data: str) -> None:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if body.get("type") == "call":
            self._spawn(self._serve(body))
        elif body.get("type") == "disconnect":
            self.gateway.disconnect(str(body.get("station", "")), str(body.get("reason", "")))
        elif body.get("type") == "reply":
            future = self._waiting.get(body.get("id", ""))
            if future is not None and not future.done():
                future.set_result(body)
        elif body.get("type") == "alerts":
            if self.monitor is not None and self.monitor.active:
                self.monitor.feed(wire.decode(list(body.get("events") or [])), self.gateway.scheduler.now())
        elif body.get("node") != self.node_id:
            self._from_another_node(body)

    def _from_another_node(self, body: dict[str, Any]) -> None:
        """What the other nodes tell every node (a station changed, an event's limits, leases given back) or ask
        this one (the planned power of a site it plans)."""
        if body.get("type") == "live" and self.on_live is not None:
            self.on_live(str(body.get("station", "")), frozenset(str(k) for k in body.get("kinds") or ()))
        elif body.get("type") == "demand_response":
            self._demand_response(body)
        elif body.get("type") == "planned" and "reply_to" in body:
            self._spawn(self._answer_planned(body))
        elif body.get("type") == "released":
            self._wake.set()  # a node left cleanly: claim what it gave back now

    def _demand_response(self, body: dict[str, Any]) -> None:
        if self.load_management is None:
            return
        try:
            steps = [(float(a), float(b), float(c)) for a, b, c in body.get("steps") or []]
            site_id, event_id = str(body["site"]), str(body["event"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignored a malformed demand-response message: %s", exc)
            return
        if self.load_management.demand_response(site_id, event_id, steps):
            log.info("site %s: demand-response event %s from node %s applied", site_id, event_id, body.get("node"))

    async def _serve(self, body: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"type": "reply", "id": body["id"]}
        fence = body.get("fence")
        if isinstance(fence, list) and len(fence) == 2 and not self.fences.admits(str(fence[0]), int(fence[1])):
            log.warning("refused %s for %s: fenced by an old lease %s", body.get("action"), body.get("station"), fence)
            reply["status"] = "fenced"
            await self.redis.publish(body["reply_to"], orjson.dumps(reply).decode())
            return
        try:
            pending = await self.gateway.call(body["station"], body["action"], body["payload"], body.get("timeout"))
            reply.update(status="ok", result=pending.as_dict())
        except StationNotConnected:
            reply["status"] = "not_connected"
        except LocalCallError as exc:
            reply.update(status="invalid", kind=exc.kind.value, detail=exc.description)
        await self.redis.publish(body["reply_to"], orjson.dumps(reply).decode())
