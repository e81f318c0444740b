"""Verdicts per case, as a test engineer reads them: passed, failed, not run (with why), expected failure
(with the feature it waits for); printed per profile and published as a Markdown table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from simulator.conformance.catalogue import PROFILES, CaseInfo

PASSED, FAILED, NOT_RUN, EXPECTED = "passed", "failed", "not run", "expected failure"
ORDER = (PASSED, FAILED, NOT_RUN, EXPECTED)
#: A note in the table is cut to this many characters (the JUnit file keeps the whole verdict).
NOTE_CHARS = 160


@dataclass(slots=True)
class Verdict:
    info: CaseInfo
    result: str
    note: str


@dataclass(slots=True)
class Results:
    cases: dict[str, Verdict] = field(default_factory=dict)

    def record(self, info: CaseInfo, report: pytest.TestReport) -> None:
        """Keep one verdict per case: the call's, unless setup or teardown failed (the first failure stands)."""
        verdict = _verdict(info, report)
        earlier = self.cases.get(info.case_id)
        if verdict is None or (earlier is not None and (earlier.result == FAILED or verdict.result != FAILED)):
            return
        self.cases[info.case_id] = verdict

    def counts(self, profile: str | None = None) -> Counter[str]:
        return Counter(v.result for v in self.cases.values() if profile is None or v.info.profile == profile)

    def summary_lines(self) -> list[str]:
        lines = []
        for profile in sorted({v.info.profile for v in self.cases.values()}):
            lines.append(f"{profile:28} " + _count_text(self.counts(profile)))
        lines.append(f"{'all':28} " + _count_text(self.counts()))
        return lines

    def markdown(self, *, version: str, target: str) -> str:
        """The published table: per profile counts, then every case with its result and note."""
        out = [f"# OCPP {version} conformance of {target}", ""]
        out += ["| profile | passed | failed | not run | expected failure |", "|---|---|---|---|---|"]
        for profile in _profiles_in_order(version, self.cases.values()):
            c = self.counts(profile)
            name = PROFILES.get(version, {}).get(profile, profile)
            out.append(f"| {name} | {c[PASSED]} | {c[FAILED]} | {c[NOT_RUN]} | {c[EXPECTED]} |")
        c = self.counts()
        out += [f"| **all** | {c[PASSED]} | {c[FAILED]} | {c[NOT_RUN]} | {c[EXPECTED]} |", ""]
        out += ["| case | title | profile | result | note |", "|---|---|---|---|---|"]
        for case_id in sorted(self.cases, key=_case_order):
            v = self.cases[case_id]
            out.append(f"| {case_id} | {_cell(v.info.title)} | {v.info.profile} | {v.result} | {_cell(v.note)} |")
        return "\n".join(out) + "\n"


def _verdict(info: CaseInfo, report: pytest.TestReport) -> Verdict | None:
    if report.when == "call" or report.failed or report.skipped:
        if hasattr(report, "wasxfail"):
            return Verdict(info, EXPECTED if report.skipped else FAILED, str(report.wasxfail))
        if report.passed:
            return Verdict(info, PASSED, "")
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            return Verdict(info, NOT_RUN, reason.removeprefix("Skipped: ").removeprefix("not run: "))
        return Verdict(info, FAILED, _first_line(report))
    return None


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    if "[XPASS(strict)]" in text:
        return "passed unexpectedly: remove it from the expected failures"
    return text.splitlines()[0] if text else ""


def _count_text(c: Counter[str]) -> str:
    return ", ".join(f"{c[k]} {k}" for k in ORDER if c[k]) or "nothing run"


def _profiles_in_order(version: str, verdicts: object) -> list[str]:
    present = {v.info.profile for v in verdicts}  # type: ignore[attr-defined]
    known = [p for p in PROFILES.get(version, {}) if p in present]
    return known + sorted(present - set(known))


def _case_order(case_id: str) -> tuple[str, int, str]:
    parts = case_id.split("_")
    block = parts[1] if len(parts) > 1 and not parts[1].isdigit() else ""
    number = next((int(p) for p in parts[1:] if p.isdigit()), 0)
    return block, number, case_id


def _cell(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1] + "…"
