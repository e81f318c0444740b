"""``sim``: run scenarios against the embedded CSMS (virtual time) or any OCPP CSMS (real time)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from simulator import plot_process
from simulator.collector import paced_collector
from simulator.conformance.arguments import add_arguments as conformance_arguments
from simulator.scenario.loader import ScenarioError, load_scenario
from simulator.verify.migration import HEADLINE

if TYPE_CHECKING:
    from simulator.fleet import Progress

#: 3: no check failed, but one's figure could not be measured (no operator could read it from the CSMS)
EXIT_FAILED_CHECK, EXIT_USAGE, EXIT_NOT_MEASURED = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write report.json and plots")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    run.add_argument("--out", type=Path, default=None, help="output directory (default: out/<scenario name>)")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument(
        "--reproducible",
        action="store_true",
        help="write wall_seconds as 0 so the same scenario + seed gives a byte-identical report.json",
    )
    run.add_argument(
        "--database-url",
        default="sqlite://",
        help="database of the embedded CSMS in virtual time (default: in-memory SQLite)",
    )
    run.add_argument("--latency", type=float, default=0.05, help="one-way network latency in seconds (virtual)")
    run.add_argument(
        "--csms",
        default=None,
        metavar="WS_URL",
        help="run against this CSMS, e.g. ws://127.0.0.1:9000/ocpp (needs --realtime)",
    )
    run.add_argument("--realtime", action="store_true", help="step the twin in step with the wall clock")
    run.add_argument("--speed", type=float, default=1.0, help="real-time speed-up factor (with --realtime)")
    run.add_argument(
        "--start",
        choices=["scenario", "now"],
        default="scenario",
        help="real time: the chargers' clock starts at the scenario's start (default) or now, the scenario's "
        "timeline kept (an event 2 h into the scenario comes 2 h into the run); with --speed 1 'now' puts them on "
        "the CSMS's clock, which its charging profiles and demand-response events need",
    )
    run.add_argument(
        "--vtn",
        default=None,
        metavar="HOST:PORT",
        help="real time: host the utility's OpenADR 2.0b VTN there; the scenario's demand_response actions reach "
        "the CSMS's VEN through it (csms serve --openadr-vtn-url http://HOST:PORT/OpenADR2/Simple/2.0b)",
    )
    run.add_argument("--duration", default=None, help="run only this long, e.g. 90s or 2h (default: the scenario's)")
    run.add_argument(
        "--password",
        default=None,
        help="HTTP Basic password of stations whose charger group has none (real time)",
    )
    run.add_argument(
        "--api-url",
        default=None,
        help="our CSMS's API (real time): provision stations and tokens, send the scenario's operator calls, "
        "and read its transactions for the report (without it: any CSMS, provisioned by you)",
    )
    run.add_argument("--api-key", default=None, help="API key for --api-url")
    run.add_argument(
        "--csms-root",
        default=None,
        metavar="PEM",
        help="the CSMS's root certificate (real time): installed by install_certificate actions, trusted by "
        "chargers that start on security profile 2 (chargetwin: csms-root.pem of `csms pki init`)",
    )
    run.add_argument(
        "--csms-tls-url",
        default=None,
        metavar="WSS_URL",
        help="where chargers on security profile 2 or 3 connect (real time), e.g. wss://127.0.0.1:9443/ocpp, "
        "unless the CSMS sent them another (2.0.1 SetNetworkProfile)",
    )
    run.add_argument(
        "--new-csms",
        default=None,
        metavar="WS_URL",
        help="a platform migration in real time (export_import, repoint): the new CSMS's OCPP endpoint, e.g. "
        "ws://127.0.0.1:9100/ocpp; a wave's chargers reach it under their old host name (host cut-over)",
    )
    run.add_argument("--new-api-url", default=None, help="the new CSMS's API (chargetwin), for the import")
    run.add_argument("--new-api-key", default=None, help="API key for --new-api-url (default: --api-key)")
    run.add_argument(
        "--operator",
        default=None,
        metavar="chargetwin|HOOKS.yaml|manual",
        help="who operates the CSMS in real time and reads back what it stored: chargetwin's API (--api-url; the "
        "default when it is given), a hooks file of HTTP calls for any other CSMS's API "
        "(docs/examples/operator-hooks.yaml), or a person following printed instructions; without one, "
        "the CSMS's own figures are reported as not measured",
    )
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument(
        "--strategy",
        choices=["none", "equal_share", "priority", "deadline", "optimal"],
        default=None,
        help="override the scenario's load-management strategy (none: load management off)",
    )
    check = sub.add_parser("validate", help="check a scenario file and print what it declares")
    check.add_argument("scenario", type=Path)
    conformance_arguments(
        sub.add_parser("conformance", help="run the OCPP conformance cases (OCTT ids) against any CSMS")
    )
    return parser


def summary_table(data: dict[str, Any]) -> Table:
    site, tx, veh = data["site"], data["transactions"], data["vehicles"]
    table = Table(
        title=f"{data['scenario']['name']} (seed {data['scenario']['seed']}, {data['mode'].removesuffix('time')} time)",
        show_header=True,
        header_style="bold",
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    limit = site["limit_kw"]
    rows = [
        ("simulated / wall", f"{data['simulated_seconds'] / 3600:.1f} h in {data['wall_seconds']:.1f} s"),
        ("stations booted", f"{data['stations']['booted']} / {data['stations']['count']}"),
        ("site peak import", f"{site['peak_import_kw']:.1f} kW" + (f" (limit {limit:g} kW)" if limit else "")),
        (
            "above the limit",
            f"{site['violation_count']} times, {site['violation_minutes']:.0f} min, {site['violation_kwh']:.1f} kWh",
        ),
        *_transaction_rows(tx),
        (
            "vehicles at target SoC",
            f"{veh['at_target']} / {veh['departed'] or veh['count']} ({100 * veh['at_target_fraction']:.1f} %)",
        ),
        ("energy delivered", f"{veh['energy_received_kwh']:.1f} kWh"),
        *_security_rows(data.get("security")),
        *_multifamily_rows(data.get("multifamily")),
        *_demand_response_rows(data.get("demand_response")),
        *_cost_rows(data.get("energy_cost")),
        *_migration_rows(data.get("migration")),
        *_roaming_rows(data.get("roaming")),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for check in data["checks"]:
        if check["passed"] is None:
            value = f"[yellow]not measured[/yellow] ({check.get('not_measured', '')})"
        else:
            value = f"{check['actual']}  " + ("[green]pass[/green]" if check["passed"] else "[red]FAIL[/red]")
        table.add_row(f"check {check['name']} {check['expected']}", value)
    return table


def _roaming_rows(roaming: dict[str, Any] | None) -> list[tuple[str, str]]:
    if roaming is None:
        return []
    return [
        (
            "roaming (the twin's eMSP, OCPI)",
            f"{roaming['sessions']} sessions, {roaming['unauthorised']} unauthorised, {roaming['remote_starts']} "
            f"remote starts; {roaming['cdrs_received']} CDRs ({roaming['cdrs_lost']} lost, "
            f"{roaming['cdrs_duplicated']} twice), max {roaming['max_cost_difference_minor']} cents / "
            f"{roaming['energy_max_error_wh']:.1f} Wh from the truth",
        )
    ]


def _cost_rows(cost: dict[str, Any] | None) -> list[tuple[str, str]]:
    if cost is None:
        return []
    unit = cost["currency"]
    return [
        (
            "energy cost (utility tariff)",
            f"{cost['total_cost']:,.2f} {unit}: energy {cost['energy_cost']:,.2f}, "
            f"demand {cost['demand_charge']:,.2f} ({cost['peak_15min_kw']:.0f} kW peak 15 min)",
        )
    ]


def _demand_response_rows(dr: dict[str, Any] | None) -> list[tuple[str, str]]:
    if dr is None:
        return []
    return [
        (
            f"demand response {e['start_s'] / 3600:.1f}-{e['end_s'] / 3600:.1f} h",
            f"limit {e['limit_kw']:g} kW, peak {e['peak_import_kw']:.1f} kW, {e['minutes_above']:.0f} min above",
        )
        for e in dr["events"]
    ]


def _multifamily_rows(mf: dict[str, Any] | None) -> list[tuple[str, str]]:
    if mf is None:
        return []
    closed = mf["units"] - mf["open"]
    return [
        (
            "unit statements vs truth",
            f"{closed} units billed, max error {mf['max_error_cents']} cents, {mf['max_error_wh']:.1f} Wh "
            f"({mf['open']} still charging)",
        ),
        ("unit ledgers vs statements", f"posted twice, max error {mf['max_ledger_error_cents']} cents"),
    ]


def _security_rows(security: dict[str, Any] | None) -> list[tuple[str, str]]:
    if security is None:
        return []
    by_profile = ", ".join(f"{n} on {p}" for p, n in security["stations_by_profile"].items())
    events = ", ".join(f"{n} {kind}" for kind, n in security["events"].items()) or "none"
    return [
        ("security profiles (station and CSMS agree)", by_profile),
        ("certificates issued by the CSMS", str(security["certificates_issued"])),
        ("security events", events),
    ]


def _migration_rows(migration: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Per wave: stations moved, time taken, sessions carried over; then the data and the stragglers."""
    if migration is None:
        return []
    rows = [
        (
            f"migration wave {w['charger']} (+{w['at_s'] / 3600:.2f} h)",
            f"{w['moved']} / {w['stations']} moved in {w['time_taken_s']} s, "
            f"{w['sessions_carried_over']} sessions carried over",
        )
        for w in migration["waves"]
    ]
    named = [t for t in HEADLINE if t in migration["data"]]
    data = ", ".join(f"{t} {migration['data'][t]['exported']}→{migration['data'][t]['imported']}" for t in named)
    equal = len(migration["data"]) - len(migration["data_mismatches"])
    data += f"; {equal} of {len(migration['data'])} tables preserved"
    took = None if migration["imported_s"] is None else migration["imported_s"] - migration["cutover_s"]
    return [
        ("migration cut-over: export and import", "not done" if took is None else f"{took:.1f} s"),
        *rows,
        ("stations on the new CSMS", f"{migration['stations_on_new']} / {migration['stations_total']}"),
        ("migration data (exported → imported)", data),
        ("away beyond their window", ", ".join(migration["downtime_beyond_window"]) or "none"),
        ("operator actions after the cut-over", _actions(migration["operator_actions"])),
    ]


def _actions(actions: list[dict[str, Any]]) -> str:
    """How many went to the new CSMS, the old one, or nowhere (between the cut-over and the station's wave)."""
    if not actions:
        return "none"
    where = {"new": "to the new CSMS", "old": "to the old CSMS", None: "to nobody (before the wave)"}
    counts = {label: sum(1 for a in actions if a["csms"] == key) for key, label in where.items()}
    return ", ".join(f"{n} {label}" for label, n in counts.items() if n)


def _transaction_rows(tx: dict[str, Any]) -> list[tuple[str, str]]:
    """The transactions and their energy as the CSMS stored them, or *not measured* and why; then what the
    CSMS acknowledged to the chargers (real time), which is the chargers' view, not the CSMS's records."""
    counted = f"{tx['started']} started, {tx['completed']} completed"
    reason = tx.get("not_measured")
    if reason is not None:
        rows = [
            ("transactions", f"{counted}; lost, duplicated: not measured"),
            ("energy truth vs CSMS", f"not measured ({reason})"),
        ]
    else:
        rows = [
            ("transactions", f"{counted}, {tx['lost']} lost, {tx['duplicated']} duplicated"),
            ("energy truth vs CSMS", f"max error {tx['energy_max_error_kwh'] * 1000:.1f} Wh ({tx['csms_source']})"),
        ]
    ack = tx.get("acknowledged")
    if ack is not None:
        rows.append(
            (
                "what the CSMS acknowledged to the chargers",
                f"{ack['recorded']} transactions, {ack['lost']} unacknowledged, "
                f"max error {ack['energy_max_error_kwh'] * 1000:.1f} Wh",
            )
        )
    return rows


def stderr_progress() -> Progress:
    """A progress line on stderr: a live bar on a terminal, a line every 10% otherwise."""
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done_s: float, total_s: float) -> None:
        pct = int(100 * done_s / total_s) if total_s else 100
        if tty:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r  simulating [{bar:<25}] {pct:3d}%  {done_s / 3600:5.1f} h of {total_s / 3600:.1f} h")
            if pct >= 100:
                sys.stderr.write("\n")
        elif pct // 10 != last[0]:
            sys.stderr.write(f"  simulated {pct}% ({done_s / 3600:.1f} h of {total_s / 3600:.1f} h)\n")
        last[0] = pct // 10
        sys.stderr.flush()

    return show


def _run(args: argparse.Namespace, console: Console, *, exiting: bool) -> int:
    scenario = load_scenario(args.scenario)
    if args.duration is not None:
        from simulator.scenario.units import parse_duration_s

        scenario = scenario.model_copy(update={"duration": parse_duration_s(args.duration)})
    out = args.out or Path("out") / scenario.name
    progress = None if args.quiet else stderr_progress()
    if args.operator and not args.csms:
        raise UsageError("--operator works in real time, against --csms (virtual time operates its embedded CSMS)")
    if (args.vtn or args.start == "now") and not args.realtime:
        raise UsageError(
            "--vtn and --start now work in real time (--csms … --realtime): in virtual time the embedded CSMS "
            "takes the scenario's demand-response events, on the scenario's clock"
        )
    if args.csms or args.realtime:
        if not (args.csms and args.realtime):
            raise UsageError("--csms needs --realtime (and --realtime needs --csms)")
        from simulator.realtime import run_realtime

        data = run_realtime(scenario, args, out, progress)
    else:
        # The imports, the run and the report under a paced collector (simulator.collector); the plots drawn by a
        # process forked first, which imports matplotlib while this one imports the runner and simulates, and
        # draws while this one builds the report (simulator.plot_process).
        with paced_collector(), plot_process.plotter() as plotter:
            from simulator.outputs import draw_plots, write_report
            from simulator.runner import VirtualRun

            run = VirtualRun(
                scenario,
                scenario_file=str(args.scenario),
                seed=args.seed,
                database_url=args.database_url,
                progress=progress,
                network=_network(args.latency),
                strategy=args.strategy,
            )
            wall = run.simulate()
            world = run.fleet.world
            targets = {a.vehicle.vehicle_id: a.vehicle.target_soc for a in world.arrivals()}
            draw_plots(plotter, world.ground_truth, run.fleet.sampler, targets, world.step_s, scenario, out)
            data = write_report(run.record(wall), out, reproducible=args.reproducible)
            if exiting:
                # Frozen before the paced collector restores the default thresholds: the next allocation would
                # otherwise collect the whole heap the run built (~0.07 s of a demo), which main freezes anyway.
                gc.freeze()
    console.print(summary_table(data))
    console.print(f"report: {out / 'report.json'}  plots: {out}/*.png")
    if data["passed"]:
        return 0
    return EXIT_FAILED_CHECK if any(c["passed"] is False for c in data["checks"]) else EXIT_NOT_MEASURED


def _network(latency: float) -> Any:
    from simulator.links.inprocess import NetworkModel

    return NetworkModel(latency_s=latency)


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    """``sim``'s commands; ``argv`` None means the process's own command line (the ``sim`` script,
    ``python -m simulator.cli``), which exits when this returns."""
    code = _command(argv, exiting=argv is None)
    if argv is None:
        # The exit would collect the whole heap a run leaves (SQLAlchemy, SciPy, the fleet, the report) several
        # times while it tears the modules down, only to free memory the process is about to give back anyway:
        # 0.3-0.5 s of a demo. Frozen objects are left out of those collections. Files are closed by now, the
        # standard streams are flushed and the atexit handlers run as before. Not for a caller's process (tests),
        # which lives on.
        gc.freeze()
    return code


def _command(argv: list[str] | None, *, exiting: bool) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    try:
        if args.command == "conformance":
            from simulator.conformance import cli as conformance  # pytest and the catalogue: only for this command

            return conformance.run(args)
        if args.command == "validate":
            scenario = load_scenario(args.scenario)
            console.print(
                f"{args.scenario}: ok — {len(scenario.station_ids())} stations, "
                f"{sum(b.count for b in scenario.vehicles)} vehicles, {scenario.duration / 3600:g} h"
            )
            return 0
        return _run(args, console, exiting=exiting)
    except ScenarioError as exc:
        print(f"sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, ValueError, OSError) as exc:
        print(f"sim: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
