"""The gateway reads whole, plain data frames itself (``csms.gateway.fast_frames``) and leaves every other frame to
websockets from its first byte: any stream of frames, cut into reads anywhere, gives the same messages, the same
answers (pongs, close frames) and the same end state as websockets alone."""

from __future__ import annotations

import os
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame
from websockets.server import ServerProtocol

from csms.gateway.fast_frames import between_frames, can_write_plain, plain_frames, text_frames
from csms.gateway.server import _drop_handshake_parser
from tests.csms.test_gateway_parser import _opened

MAX_SIZE = 300


def _frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0, wide: int = 0) -> bytes:
    """A client's frame; ``wide``: the length written as 16 bits (1) or 64 bits (2) whatever it is."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    flag = 0x80 if masked else 0
    if wide == 2:
        head += bytes([flag | 127]) + len(payload).to_bytes(8)
    elif wide == 1 or len(payload) > 125:
        head += bytes([flag | 126]) + len(payload).to_bytes(2)
    else:
        head += bytes([flag | len(payload)])
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@st.composite
def _frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["text", "text", "text", "binary", "fragments", "ping", "pong", "odd"]))
    size = draw(st.sampled_from([0, 1, 7, 40, 125, 126, 127, 200, MAX_SIZE - 1, MAX_SIZE, MAX_SIZE + 1, MAX_SIZE + 20]))
    payload = draw(st.binary(min_size=size, max_size=size))
    if kind in ("text", "binary"):
        return _frame(1 if kind == "text" else 2, payload, wide=draw(st.sampled_from([0, 0, 1, 2])))
    if kind == "fragments":
        return _frame(1, payload[:5], fin=False) + _frame(0, payload[5:])
    if kind in ("ping", "pong"):
        return _frame(9 if kind == "ping" else 10, payload[:100])
    return draw(
        st.sampled_from(
            [
                _frame(1, payload, masked=False),
                _frame(1, payload, rsv=0x40),
                _frame(3, payload),  # a reserved opcode
                _frame(0, payload),  # a continuation of nothing
                _frame(8, b"\x03\xe8"),  # close 1000
            ]
        )
    )


def _websockets_alone(protocol: ServerProtocol, chunk: bytes) -> list[tuple[int, bytes, bool]]:
    protocol.receive_data(chunk)
    return [(f.opcode, bytes(f.data), f.fin) for f in protocol.events_received() if isinstance(f, Frame)]


def _as_the_gateway_reads(protocol: ServerProtocol, chunk: bytes) -> list[tuple[int, bytes, bool]]:
    """What :meth:`csms.gateway.server.Link.data_received` does with a read."""
    messages: list[tuple[int, bytes, bool]] = []
    if between_frames(protocol):
        frames, read = plain_frames(chunk, protocol.max_message_size)
        messages += [(opcode, payload, True) for opcode, payload in frames]
        if read < len(chunk):
            protocol.receive_data(chunk[read:])
    else:
        protocol.receive_data(chunk)
    return messages + [(f.opcode, bytes(f.data), f.fin) for f in protocol.events_received() if isinstance(f, Frame)]


def _open() -> ServerProtocol:
    protocol, _ = _opened()
    protocol.max_message_size = MAX_SIZE
    _drop_handshake_parser(protocol)
    return protocol


@settings(max_examples=400, deadline=None)
@given(
    frames=st.lists(_frames(), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
)
def test_any_stream_cut_anywhere_reads_as_websockets_reads_it(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frames)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in pairwise(bounds)]
    alone, fast = _open(), _open()
    expected = [m for chunk in chunks for m in _websockets_alone(alone, chunk)]
    got = [m for chunk in chunks for m in _as_the_gateway_reads(fast, chunk)]
    assert got == expected
    assert fast.state is alone.state
    assert fast.data_to_send() == alone.data_to_send()
    assert (fast.close_sent and fast.close_sent.code) == (alone.close_sent and alone.close_sent.code)


def test_a_whole_plain_frame_is_read_here_and_a_split_one_by_websockets() -> None:
    protocol = _open()
    text = _frame(1, b'[2,"1","Heartbeat",{}]')
    assert between_frames(protocol)
    assert plain_frames(text + text[:3], MAX_SIZE) == ([(1, b'[2,"1","Heartbeat",{}]')], len(text))
    protocol.receive_data(text[:3])  # half a frame waits in websockets' buffer: not between frames any more
    assert not between_frames(protocol)


_SIZES = st.sampled_from([0, 1, 125, 126, 127, 300, 0xFFFF, 0x10000, 70_000])


@given(texts=st.lists(st.tuples(st.text(max_size=5), _SIZES).map(lambda t: t[0] + "x" * t[1]), max_size=3))
@settings(max_examples=60, deadline=None)
def test_answers_are_the_bytes_websockets_writes(texts: list[str]) -> None:
    protocol = _open()
    assert can_write_plain(protocol)
    for text in texts:
        protocol.send_text(text.encode())
    assert text_frames(texts) == b"".join(protocol.data_to_send())


def test_answers_go_through_websockets_while_it_has_bytes_of_its_own_to_send() -> None:
    protocol = _open()
    protocol.receive_data(_frame(9, b"ping"))  # the pong waits in websockets' output
    assert not can_write_plain(protocol)
    protocol.data_to_send()
    assert can_write_plain(protocol)
    protocol.send_close(1000, "bye")
    assert not can_write_plain(protocol)
