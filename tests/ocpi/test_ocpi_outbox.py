"""The push outbox on SQLite and PostgreSQL: a push taken by one worker is not handed to another until its
claim lapses, a failed one comes back after its back-off, a delivered one never again."""

from __future__ import annotations

from datetime import timedelta

from csms.services import ocpi


def test_a_push_is_claimed_retried_and_delivered_once(session_factory, now):
    with session_factory() as db, db.begin():
        party, _ = ocpi.add_party(db, "DE", "EMS", now)
        ocpi.registered(db, party, peer_token="t", versions_url="http://e/v", version="2.2.1", endpoints=[], roles=[],
                        now=now)  # fmt: skip
        ocpi.enqueue(db, party.id, "locations", "PATCH", "http://e/l/1", {"status": "CHARGING"}, now)
    with session_factory() as db, db.begin():
        (first,) = ocpi.due_pushes(db, now)
        assert (first["token"], first["country_code"], first["party_id"]) == ("t", "DE", "EMS")
    with session_factory() as db, db.begin():  # another worker, at once: nothing for it
        assert ocpi.due_pushes(db, now) == []
    with session_factory() as db, db.begin():  # the first worker's attempt failed: back in 30 s
        ocpi.record_push(db, first["id"], at=now, status=503, error="down", delivered=False, retry_after_s=30)
        assert ocpi.due_pushes(db, now + timedelta(seconds=29)) == []
    with session_factory() as db, db.begin():
        (again,) = ocpi.due_pushes(db, now + timedelta(seconds=30))
        assert again["attempts"] == 1
        ocpi.record_push(db, again["id"], at=now, status=200, error=None, delivered=True, retry_after_s=None)
    with session_factory() as db, db.begin():
        assert ocpi.due_pushes(db, now + timedelta(days=1)) == []
        (row,) = ocpi.pushes(db)
        assert (row.status, row.attempts, row.last_status) == ("delivered", 2, 200)
    # A worker that died holding the claim: the push is due again once the claim lapses.
    with session_factory() as db, db.begin():
        ocpi.enqueue(db, party.id, "locations", "PATCH", "http://e/l/2", {"status": "AVAILABLE"}, now)
    with session_factory() as db, db.begin():
        assert len(ocpi.due_pushes(db, now)) == 1
    with session_factory() as db, db.begin():
        assert len(ocpi.due_pushes(db, now + ocpi.CLAIM)) == 1
