"""Invoice documents: PDF (reportlab's platypus: a table of lines, totals with VAT) and CSV, from an invoice's
stored lines. The same invoice renders the same document every time: nothing is read but what is handed in."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.domain import money
from csms.reports.formats import csv_lines


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    address: str = ""
    vat_id: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    number: str
    issued_at: datetime
    period_start: datetime
    period_end: datetime
    currency: str
    net_minor: int
    vat_minor: int
    gross_minor: int
    lines: Sequence[Mapping[str, Any]]
    seller: Party
    buyer: Party


CSV_COLUMNS = ("number", "date", "kind", "description", "reference", "net", "vat", "gross", "currency")


def csv_document(invoice: InvoiceDocument) -> Iterator[str]:
    """One row per line, then a TOTAL row; amounts in whole units with the currency's places."""

    def amount(minor: int) -> str:
        return str(money.from_minor(minor, invoice.currency))

    rows = [
        {
            "number": invoice.number,
            "date": str(line["date"])[:10],
            "kind": line["kind"],
            "description": line["description"],
            "reference": line.get("reference") or "",
            "net": amount(line["net_minor"]),
            "vat": amount(line["vat_minor"]),
            "gross": amount(line["gross_minor"]),
            "currency": invoice.currency,
        }
        for line in invoice.lines
    ]
    rows.append(
        {
            "number": invoice.number,
            "description": "TOTAL",
            "net": amount(invoice.net_minor),
            "vat": amount(invoice.vat_minor),
            "gross": amount(invoice.gross_minor),
            "currency": invoice.currency,
        }
    )
    return csv_lines(rows, CSV_COLUMNS)


def pdf_document(invoice: InvoiceDocument) -> bytes:
    from reportlab.lib import colors  # ~0.2 s to import: only when a PDF is asked for
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, title=f"Invoice {invoice.number}", author=invoice.seller.name, leftMargin=18 * mm
    )

    def money_text(minor: int) -> str:
        return money.format_amount(minor, invoice.currency)

    def party(p: Party, role: str) -> Paragraph:
        parts = [f"<b>{role}</b>", _escape(p.name), *(_escape(x) for x in p.address.splitlines())]
        parts += [f"VAT {_escape(p.vat_id)}"] if p.vat_id else []
        return Paragraph("<br/>".join(parts), styles["Normal"])

    head = Table([[party(invoice.seller, "From"), party(invoice.buyer, "Bill to")]], colWidths=[85 * mm, 85 * mm])
    facts = (
        f"<b>Invoice {invoice.number}</b><br/>Issued {invoice.issued_at:%Y-%m-%d}<br/>"
        f"Period {invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d} (end excluded)"
    )
    rows: list[list[Any]] = [["Date", "Description", "Net", "VAT", "Total"]]
    for line in invoice.lines:
        rows.append(
            [
                str(line["date"])[:10],
                Paragraph(_escape(str(line["description"])), styles["BodyText"]),
                money_text(line["net_minor"]),
                money_text(line["vat_minor"]),
                money_text(line["gross_minor"]),
            ]
        )
    rows += [
        ["", "Total excluding VAT", "", "", money_text(invoice.net_minor)],
        ["", "VAT", "", "", money_text(invoice.vat_minor)],
        ["", "Total to pay", "", "", money_text(invoice.gross_minor)],
    ]
    table = Table(rows, colWidths=[22 * mm, 78 * mm, 24 * mm, 22 * mm, 28 * mm], repeatRows=1)
    totals = len(rows) - 3
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                ("LINEABOVE", (0, totals), (-1, totals), 0.8, colors.black),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("ROWBACKGROUNDS", (0, 1), (-1, totals - 1), [colors.white, colors.HexColor("#f1f3f5")]),
            ]
        )
    )
    story = [head, Spacer(1, 8 * mm), Paragraph(facts, styles["Normal"]), Spacer(1, 6 * mm), table]
    doc.build(story)
    return buffer.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
