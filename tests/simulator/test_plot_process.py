"""The plots drawn by a forked process: the same files as drawn in-process, failures raised in the parent."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator import plots
from simulator.plot_process import ForkedPlotter, InlinePlotter, PlotProcessFailed, plotter
from simulator.twin.site_meter import MeterStep

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
LOG = tuple(
    MeterStep(60.0 * i, 60.0, 20.0 + i % 7, 5.0 * (i % 11), 20.0 + i % 7 + 5.0 * (i % 11), 60.0) for i in range(120)
)
POWER = {"ac-1": [(0.0, 7.4), (3600.0, 0.0)], "ac-2": [(600.0, 11.0)], "dc-1": [(0.0, 0.0)]}
SOC = {"v-1": [(60.0 * i, 0.2 + 0.005 * i) for i in range(120)], "v-2": [(0.0, 0.5), (7200.0, 0.6)]}


def _draw_all(draw: InlinePlotter | ForkedPlotter, out: Path) -> None:
    draw.draw("site_import", LOG, START, out / "site_import.png", "test")
    draw.draw("evse_power", POWER, START, 60.0, 7200.0, out / "evse_power.png", "test")
    draw.draw("vehicle_soc", SOC, {"v-1": 0.8, "v-2": 0.6}, START, out / "vehicle_soc.png", "test")


def test_a_forked_plotter_writes_the_same_bytes_as_drawing_in_process(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    _draw_all(InlinePlotter(), here)
    forked = ForkedPlotter.start()
    _draw_all(forked, there)
    forked.finish()
    for name in ("site_import.png", "evse_power.png", "vehicle_soc.png"):
        assert (there / name).read_bytes() == (here / name).read_bytes(), name


def test_a_failed_drawing_is_raised_in_the_parent_after_the_other_jobs_were_read(tmp_path):
    forked = ForkedPlotter.start()
    forked.draw("no_such_plot", 1)
    forked.draw("site_import", LOG, START, tmp_path / "never-written" / "site_import.png", "test")
    with pytest.raises(PlotProcessFailed, match="no_such_plot"):
        forked.finish()
    assert not (tmp_path / "never-written").exists()  # nothing drawn after the failure


def test_a_job_larger_than_the_pipe_is_sent_while_the_child_is_still_drawing(monkeypatch, tmp_path):
    gate_read, gate_write = os.pipe()
    monkeypatch.setattr(plots, "wait_for_gate", lambda: os.read(gate_read, 1), raising=False)
    monkeypatch.setattr(plots, "write_size", lambda blob, path: path.write_text(str(len(blob))), raising=False)
    forked = ForkedPlotter.start()
    forked.draw("wait_for_gate")  # the child draws this one until the gate opens
    sent = threading.Event()

    def send() -> None:
        forked.draw("write_size", b"x" * 4_000_000, tmp_path / "size")
        sent.set()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert sent.wait(timeout=30), "draw() waited for the child to finish the plot before"
    finally:
        os.write(gate_write, b"!")
        sender.join()
    forked.finish()
    assert (tmp_path / "size").read_text() == "4000000"


def test_a_failing_run_stops_and_reaps_the_plot_process():
    forked = ForkedPlotter.start()
    forked.abandon()
    with pytest.raises(ChildProcessError):
        os.waitpid(forked.pid, os.WNOHANG)


def test_with_other_threads_running_the_plots_are_drawn_in_process(tmp_path):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with plotter() as draw:
            assert isinstance(draw, InlinePlotter)
            draw.draw("site_import", LOG, START, tmp_path / "site_import.png", "test")
    finally:
        stop.set()
        other.join()
    assert (tmp_path / "site_import.png").stat().st_size > 10_000
