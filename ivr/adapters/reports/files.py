"""The monthly report as a file: ``xlsx`` (openpyxl: one sheet per table), ``pdf`` (reportlab,
its built-in ``STSong-Light`` CID font for Chinese: no font file needed; a detail table, one
row per item, is named with its row count, not printed) or ``csv`` (UTF-8 with
a byte-order mark so spreadsheet programs read the Chinese; the tables one after another, each
under its title). The tables are :func:`ivr.core.report_tables.monthly_tables`'s.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal

from openpyxl import Workbook
from openpyxl.styles import Font
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus import Table as PdfTable
from sqlalchemy import Engine

from ivr.adapters.sql.ticket_figures import (
    STORED_FOLLOW_UPS,
    STORED_REPEATS,
    FollowUpReader,
    RepeatReader,
    month_facts,
)
from ivr.core.figures import FiguresConfig, Window
from ivr.core.report_tables import Cell, Table, monthly_tables

Format = Literal["xlsx", "pdf", "csv"]
FORMATS: Final = ("xlsx", "pdf", "csv")
MEDIA_TYPES: Final = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
}
CJK_FONT: Final = "STSong-Light"


def monthly_file(
    engine: Engine,
    window: Window,
    config: FiguresConfig,
    accounts: Collection[str],
    fmt: Format,
    title: str,
    as_of: datetime,
    *,
    follow_ups: FollowUpReader = STORED_FOLLOW_UPS,
    repeats: RepeatReader = STORED_REPEATS,
) -> bytes:
    """The report of ``window`` from SQL, as a file of format ``fmt``."""
    facts = month_facts(engine, window, accounts, follow_ups, repeats)
    tables = monthly_tables(facts, window, config, as_of)
    if fmt == "xlsx":
        return xlsx(tables, title)
    if fmt == "pdf":
        return pdf(tables, title)
    return csv_bytes(tables, title)


def report_title(window: Window) -> str:
    """The report's title: the month, or the first and last day."""
    last = window.end - timedelta(days=1)
    if window.start.day == 1 and window.end.day == 1 and last.month == window.start.month:
        return f"热线服务月度报告 hotline monthly report {window.start:%Y-%m}"
    return f"热线服务报告 hotline report {window.start:%Y-%m-%d} – {last:%Y-%m-%d}"


def report_name(window: Window, fmt: str) -> str:
    """The file's name: ``hotline-report-2026-11.xlsx`` or ``…-2026-11-01_2026-11-15.pdf``."""
    last = window.end - timedelta(days=1)
    if window.start.day == 1 and window.end.day == 1 and last.month == window.start.month:
        return f"hotline-report-{window.start:%Y-%m}.{fmt}"
    return f"hotline-report-{window.start:%Y-%m-%d}_{last:%Y-%m-%d}.{fmt}"


def _sheet_name(title: str) -> str:
    """Excel's sheet names: at most 31 characters, none of ``[]:*?/\\``."""
    cleaned = "".join(" " if ch in "[]:*?/\\" else ch for ch in title)
    return cleaned[:31]


def xlsx(tables: Sequence[Table], title: str) -> bytes:
    book = Workbook()
    first = book.active
    if first is not None:
        book.remove(first)
    bold = Font(bold=True)
    for table in tables:
        sheet = book.create_sheet(_sheet_name(table.title))
        sheet.append([title])
        sheet["A1"].font = bold
        sheet.append(list(table.header))
        for cell in sheet[2]:
            cell.font = bold
        for row in table.rows:
            sheet.append(list(row))
        for note in table.notes:
            sheet.append([note])
        for column in sheet.columns:
            letter = column[0].column_letter
            width = max(len(str(c.value)) for c in column[1:] if c.value is not None)
            sheet.column_dimensions[letter].width = min(max(width * 1.6, 8), 60)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(tables: Sequence[Table], title: str) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([title])
    for table in tables:
        writer.writerow([])
        writer.writerow([table.title])
        writer.writerow(table.header)
        writer.writerows(["" if c is None else c for c in row] for row in table.rows)
        writer.writerows([note] for note in table.notes)
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def _pdf_cell(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return str(cell)


def pdf(tables: Sequence[Table], title: str) -> bytes:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    heading = ParagraphStyle("heading", fontName=CJK_FONT, fontSize=14, leading=18)
    body = ParagraphStyle("body", fontName=CJK_FONT, fontSize=8, leading=10)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), title=title)
    story: list[Flowable] = [Paragraph(_escape(title), heading), Spacer(1, 8)]
    for table in tables:
        story += [Paragraph(_escape(table.title), heading), Spacer(1, 4)]
        if table.detail:  # thousands of rows: the PDF says where they are
            where = f"{len(table.rows)} 行 rows: 见 Excel / CSV 文件 in the xlsx and CSV files"
            story += [Paragraph(_escape(where), body), Spacer(1, 12)]
            continue
        cells = [[Paragraph(_escape(h), body) for h in table.header]]
        cells += [[Paragraph(_escape(_pdf_cell(c)), body) for c in row] for row in table.rows]
        grid = PdfTable(cells, repeatRows=1)
        grid.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(grid)
        story += [Paragraph(_escape(note), body) for note in table.notes]
        story.append(Spacer(1, 12))
    doc.build(story)
    return out.getvalue()


def _escape(text: str) -> str:
    """Paragraph text is a small markup: escape what the data could hold."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
