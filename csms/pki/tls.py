"""The CSMS's side of TLS for security profiles 2 and 3: the server context, whichever shell runs the handshake
(the asyncio gateway on sockets, the embedded CSMS of a virtual run in memory)."""

from __future__ import annotations

import ssl
from pathlib import Path


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
        # The station CA may be a sub-CA whose root is not in the file: trusting it is enough.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context
