"""A node that loses PostgreSQL stops acknowledging: while a TCP proxy in front of the real server is cut, the
chargers get no CALLRESULT for what they send (the node answers InternalError, it cannot store it), and once
the proxy lets the database through again the node acknowledges again by itself; every message acknowledged
before, during or after is in the database."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from pathlib import Path

import pytest

from csms.store.database import make_engine, make_session_factory
from tests.conftest import fresh_postgres_url
from tests.support.chargers import NodeCharger, acknowledged, missing_acknowledged
from tests.support.cluster import cancel_all, until
from tests.support.tcp_proxy import TcpProxy

sys.path.insert(0, str(Path(__file__).parents[2] / "loadtests"))

import harness
import provision

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

TRANSACTION_MESSAGES = ("MeterValues", "TransactionEvent", "StartTransaction")


async def test_a_node_without_its_database_acknowledges_nothing_and_recovers(tmp_path):
    database = fresh_postgres_url()
    url = next(database)
    rows = provision.plan(2, f"db{uuid.uuid4().hex[:6]}-", 0.5, None, unique=False)
    provision.provision(url, rows, "LOADTEST")
    host_port, name = url.split("@", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    proxy = await TcpProxy([(host, int(port))]).start()
    node = None
    tasks: list[asyncio.Task] = []
    try:
        proxied = f"{url.split('@', 1)[0]}@127.0.0.1:{proxy.port}/{name}"
        node = await asyncio.to_thread(
            harness.start_csms, proxied, tmp_path, name="node", extra_args=["--shutdown-grace", "2"]
        )
        chargers = [NodeCharger(sid, pw, v, [node.ocpp_url], first=i) for i, (sid, pw, v) in enumerate(rows)]
        tasks = [asyncio.create_task(c.run()) for c in chargers]
        await until(lambda: all(c.charger.online for c in chargers), 20, "every charger booted")
        for c in chargers:
            c.charger.plug_in(1, "LOADTEST", time.time())
        await until(lambda: acknowledged(chargers, *TRANSACTION_MESSAGES) >= 6, 15, "transactions acknowledged")

        proxy.cut()
        await asyncio.sleep(0.5)  # a batch already committed may still be answered
        during = acknowledged(chargers, *TRANSACTION_MESSAGES)
        await asyncio.sleep(3.0)  # chargers keep sending every second
        assert acknowledged(chargers, *TRANSACTION_MESSAGES) == during, "acknowledged without a database"
        assert sum(len(c.sent) for c in chargers) > 0  # they did send, unanswered or refused

        proxy.restore()
        recovered_s = await until(
            lambda: acknowledged(chargers, *TRANSACTION_MESSAGES) > during + 2, 20, "acknowledgements to resume"
        )
        print(f"\ndatabase back: acknowledging again after {recovered_s:.2f} s")
        assert node.process.poll() is None, node.log()
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as db:
                assert missing_acknowledged(db, chargers) == []
        finally:
            engine.dispose()
    finally:
        await cancel_all(tasks)
        if node is not None:
            node.stop()
        await proxy.stop()
        with contextlib.suppress(StopIteration):
            next(database)
