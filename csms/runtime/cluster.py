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
from typing import Any, cast

import orjson
import redis
import redis.asyncio as aioredis

from csms.gateway.server import Gateway, StationNotConnected
from csms.ocpp.errors import ErrorKind, LocalCallError

log = logging.getLogger(__name__)

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

    def __init__(
        self,
        gateway: Gateway,
        broker_url: str,
        node_id: str | None = None,
        *,
        ttl_s: int = 15,
        reply_slack_s: float = 5.0,
        batch: int = 500,
    ) -> None:
        if not broker_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"--broker must be a redis:// URL, got {broker_url!r}")
        self.gateway = gateway
        self.broker_url = broker_url
        self.node_id = node_id or default_node_id()
        self.ttl_s = max(3, int(ttl_s))
        self.reply_slack_s = reply_slack_s
        self.batch = batch
        self.redis = aioredis.from_url(broker_url, decode_responses=True)
        # The sync client serves the threadpool's sync endpoints (the stations' "connected" flag).
        self.sync_redis = redis.Redis.from_url(broker_url, decode_responses=True, socket_timeout=2)
        self._refresh = self.redis.register_script(_REFRESH)
        self._release = self.redis.register_script(_RELEASE)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

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
        await self._pubsub.subscribe(self.channel, self.reply_channel)
        self._listener = asyncio.create_task(self._listen(), name="csms-cluster-listen")
        await self._refresh_all()
        self._heartbeat = asyncio.create_task(self._keep_alive(), name="csms-cluster-heartbeat")
        self.gateway.cluster = self
        log.info("node %s joined the cluster on %s (registry TTL %d s)", self.node_id, self.broker_url, self.ttl_s)

    async def stop(self) -> None:
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

    # ---- routing -----------------------------------------------------------------------------------------
    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout_s: float | None
    ) -> dict[str, Any]:
        """Run a call on the node that holds the station's socket; the API's JSON outcome.

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
                    await self._pubsub.subscribe(self.channel, self.reply_channel)

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

    async def _serve(self, body: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"type": "reply", "id": body["id"]}
        try:
            pending = await self.gateway.call(body["station"], body["action"], body["payload"], body.get("timeout"))
            reply.update(status="ok", result=pending.as_dict())
        except StationNotConnected:
            reply["status"] = "not_connected"
        except LocalCallError as exc:
            reply.update(status="invalid", kind=exc.kind.value, detail=exc.description)
        await self.redis.publish(body["reply_to"], orjson.dumps(reply).decode())
