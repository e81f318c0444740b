"""The common case of an OCPP station's frames, read without websockets' generator-based parser, and the answers
written without its frame objects.

Nearly every frame a station sends is one whole masked TEXT message (a CALL or CALLRESULT of a few hundred
bytes) arriving in one read. websockets' sans-IO parser reads it through four nested generators (~4 µs a
frame, the largest part of the event loop's own work per message besides the socket calls, issue 13); the
same checks on a frame that is whole and plain take well under 1 µs. Anything else (a fragment, a control
frame, a frame split across reads, reserved bits, a frame over the size limit, a 64-bit length) is left to
websockets, from the first byte of that frame on, so its rules and errors stay the only ones. The answers of a
commit are whole unmasked TEXT frames, written as websockets writes them (its ``send_text``, a ``Frame`` and its
``serialize`` each, ~1.4 µs a frame) when nothing else waits in websockets' output.
"""

from __future__ import annotations

from websockets.frames import Opcode
from websockets.protocol import OPEN, Protocol
from websockets.speedups import apply_mask  # websockets' C extension
from websockets.streams import StreamReader

#: First header byte of a final, unextended TEXT or BINARY frame (FIN set, RSV1-3 clear).
_PLAIN = {0x81: Opcode.TEXT, 0x82: Opcode.BINARY}
_AT_EOF = StreamReader.at_eof.__code__


def between_frames(protocol: Protocol) -> bool:
    """Whether websockets' frame parser waits for the first byte of a frame with nothing buffered, no message in
    fragments and no extension or debug log to apply: what it would read next may then be read here instead."""
    waiting = getattr(protocol.parser, "gi_yieldfrom", None)  # Protocol.parse, between frames: in at_eof
    return (
        protocol.state is OPEN
        and protocol.current_size is None
        and not protocol.reader.buffer
        and not protocol.extensions
        and not protocol.debug
        and getattr(waiting, "gi_code", None) is _AT_EOF
    )


def can_write_plain(protocol: Protocol) -> bool:
    """Whether frames may go out here rather than through websockets: open, nothing of its own waiting to be sent
    (a pong, a close frame), no message in fragments, no extension or debug log."""
    return (
        protocol.state is OPEN
        and not protocol.writes
        and not protocol.expect_continuation_frame
        and not protocol.extensions
        and not protocol.debug
    )


def text_frames(texts: list[str]) -> bytes:
    """Each text as one final, unmasked TEXT frame (a server's), in order: the bytes websockets writes for it."""
    out = bytearray()
    for text in texts:
        payload = text.encode()
        length = len(payload)
        if length < 126:
            out += bytes((0x81, length))
        elif length < 0x10000:
            out += bytes((0x81, 126)) + length.to_bytes(2)
        else:
            out += bytes((0x81, 127)) + length.to_bytes(8)
        out += payload
    return bytes(out)


def plain_frames(data: bytes, max_size: int | None) -> tuple[list[tuple[Opcode, bytes]], int]:
    """The whole, plain, masked data frames at the start of ``data`` (opcode and unmasked payload each), and the
    offset of the first byte not read (``len(data)``: all of it)."""
    frames: list[tuple[Opcode, bytes]] = []
    end = len(data)
    at = 0
    while at + 6 <= end:
        opcode = _PLAIN.get(data[at])
        second = data[at + 1]
        if opcode is None or not second & 0x80:  # a client's frames are masked (websockets refuses the others)
            break
        length = second & 0x7F
        start = at + 6
        if length == 126:
            start += 2
            if start > end:
                break
            length = int.from_bytes(data[at + 2 : at + 4])
        elif length == 127:
            break
        if (max_size is not None and length > max_size) or start + length > end:
            break
        frames.append((opcode, apply_mask(data[start : start + length], data[start - 4 : start])))
        at = start + length
    return frames, at
