"""``sim conformance``'s command line, apart from :mod:`.cli` so that building ``sim``'s parser imports neither
pytest nor the catalogue (``sim run`` starts ~1 s faster; the run itself happens in :mod:`.cli`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csms", required=True, metavar="URL", help="the CSMS's OCPP endpoint, ws://HOST:PORT/PATH")
    parser.add_argument("--csms-tls-url", default=None, metavar="URL", help="its wss:// endpoint (profiles 2, 3)")
    parser.add_argument("--ca-file", default=None, metavar="PEM", help="CA that signs the CSMS's server certificate")
    parser.add_argument("--client-cert", default=None, metavar="PEM", help="the station's certificate (profile 3)")
    parser.add_argument("--client-key", default=None, metavar="PEM", help="its private key")
    parser.add_argument(
        "--client-ca-cert",
        default=None,
        metavar="PEM",
        help="a station CA the CSMS trusts: each case's station gets a certificate naming its id (profile 3)",
    )
    parser.add_argument("--client-ca-key", default=None, metavar="PEM", help="that CA's private key")
    parser.add_argument("--ocpp", required=True, choices=["1.6", "2.0.1"], help="OCPP version")
    parser.add_argument(
        "--station-id", default=None, metavar="ID", help="station id when the operator cannot provision one"
    )
    parser.add_argument("--password", default=None, metavar="P", help="that station's HTTP Basic password")
    parser.add_argument(
        "--profile", default=None, metavar="P[,P…]", help="certification profiles to run (default: all)"
    )
    parser.add_argument("--case", action="append", default=[], metavar="TC_…", help="run only this case (repeatable)")
    parser.add_argument(
        "--operator", default=None, metavar="chargetwin|hooks.yaml|manual", help="how the CSMS is made to act"
    )
    parser.add_argument("--api-url", default=None, metavar="URL", help="chargetwin's API (for --operator chargetwin)")
    parser.add_argument("--api-key", default=None, metavar="KEY", help="chargetwin API key")
    parser.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML")
    parser.add_argument("--report", default=None, metavar="FILE", help="write a Markdown table")
    parser.add_argument("--expected-failures", default=None, metavar="YAML", help="cases known to fail, with why")
    parser.add_argument(
        "--reply-timeout", type=float, default=10.0, metavar="S", help="station's CALL timeout (default 10)"
    )
    parser.add_argument(
        "--open-timeout", type=float, default=10.0, metavar="S", help="station's handshake timeout (default 10)"
    )
    parser.add_argument("--wait", type=float, default=None, metavar="S", help="wait for the CSMS to act (default 15)")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing case")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
