"""The TLS side of the gateway (security profiles 2 and 3): the server's context and what a connection's
handshake proved about its peer."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from csms.services.admission import Channel


def server_context(cert_file: Path | str, key_file: Path | str, client_ca_file: Path | str | None) -> ssl.SSLContext:
    """TLS 1.2 or later with the CSMS's certificate. With ``client_ca_file``, a client certificate is asked
    for and, when one is sent, must chain to that CA or the TLS handshake fails; profile-2 stations send none.

    Raises:
        OSError: a file cannot be read.  ssl.SSLError: a file is not a PEM certificate/key, or they do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def channel_of(transport: asyncio.BaseTransport) -> Channel:
    """Plain, or TLS with the subject CN of the client certificate the handshake verified (None: none sent);
    with the peer's address either way."""
    peername = transport.get_extra_info("peername")
    source = str(peername[0]) if isinstance(peername, tuple) and peername else None
    if transport.get_extra_info("ssl_object") is None:
        return Channel(source=source)
    peer = transport.get_extra_info("peercert") or {}
    names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    return Channel(tls=True, client_cn=names[-1] if names else None, source=source)
