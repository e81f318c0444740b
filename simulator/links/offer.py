"""What a charger offers at a connection attempt, read from its security state (both links build it here):
HTTP Basic credentials, and on ``wss://`` (or security profile 2 and up) a TLS client context with the CSMS
roots it holds and, on profile 3, its certificate. A new password, profile, URL or certificate taken over OCPP
counts from the next attempt."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from simulator.links.tls import client_context
from simulator.station.charger import Charger


def basic_auth(station_id: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()


@dataclass(frozen=True, slots=True)
class Offer:
    authorization: str | None = None
    tls: ssl.SSLContext | None = None
    #: The host name the CSMS's certificate must carry (from the URL the charger connects to).
    server_name: str | None = None


def offer(
    charger: Charger,
    url: str,
    default_password: str | None,
    *,
    ca_file: Path | str | None = None,
    virtual_time: bool = False,
) -> Offer:
    """Raises ssl.SSLError: TLS is due and the charger holds no CSMS root to verify the server with."""
    security = charger.security
    password = security.password or default_password
    authorization = basic_auth(charger.station_id, password) if password else None
    if not (url.startswith("wss://") or security.profile >= 2):
        return Offer(authorization)
    context = client_context(security, ca_file, virtual_time=virtual_time)
    return Offer(authorization, context, urlsplit(url).hostname)
