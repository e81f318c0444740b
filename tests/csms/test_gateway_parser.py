"""The gateway swaps websockets' handshake parser for its frame parser once a connection is open (it kept the
HTTP request alive for the connection's life): frames parse the same after the swap, and a peer that sent data
before the handshake's answer keeps the parser it had."""

from __future__ import annotations

import gc
import weakref

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from csms.gateway.server import _drop_handshake_parser

HANDSHAKE = (
    b"GET /ocpp/cp-1 HTTP/1.1\r\nHost: csms\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _masked_text(payload: bytes, fin: bool = True, opcode: int = 0x1) -> bytes:
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask + body


def _opened() -> tuple[ServerProtocol, Request]:
    protocol = ServerProtocol()
    protocol.receive_data(HANDSHAKE)
    [request] = protocol.events_received()
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    return protocol, request


def test_frames_parse_the_same_after_the_swap_and_the_request_is_let_go():
    protocol, request = _opened()
    handshake_parser = protocol.parser
    gone = weakref.ref(request)
    del request
    _drop_handshake_parser(protocol)
    assert protocol.parser is not handshake_parser
    del handshake_parser
    gc.collect()
    assert gone() is None
    protocol.receive_data(_masked_text(b'[2,"1","Heartbeat",{}]')[:5])  # a frame in two reads
    protocol.receive_data(_masked_text(b'[2,"1","Heartbeat",{}]')[5:] + _masked_text(b"abc", fin=False))
    protocol.receive_data(_masked_text(b"def", opcode=0x0))
    frames = protocol.events_received()
    assert [(f.opcode, bytes(f.data), f.fin) for f in frames if isinstance(f, Frame)] == [
        (Opcode.TEXT, b'[2,"1","Heartbeat",{}]', True),
        (Opcode.TEXT, b"abc", False),
        (Opcode.CONT, b"def", True),
    ]
    protocol.receive_data(bytes([0x88, 0x82]) + b"\x00\x00\x00\x00" + b"\x03\xe8")  # close 1000
    assert protocol.close_rcvd is not None and protocol.close_rcvd.code == 1000


def test_a_peer_that_sent_data_before_the_answer_keeps_its_parser():
    protocol = ServerProtocol()
    protocol.receive_data(HANDSHAKE + _masked_text(b"early")[:3])  # half a frame before the 101
    [request] = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    parser = protocol.parser
    _drop_handshake_parser(protocol)
    assert protocol.parser is parser
