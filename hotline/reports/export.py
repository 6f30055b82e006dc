"""A report as CSV (one block per table) or XLSX (one sheet per table), the same rows the JSON carries.

Rates are written as numbers (0.9523) with a percent format in XLSX; CSV starts with a BOM so
Excel opens the Chinese text as UTF-8. XLSX building is CPU work: callers run it in a thread.
"""
from __future__ import annotations

import csv
import io
import re

from hotline.reports.queries import Report, Section

PERCENT_KEYS = re.compile(r"(_rate|_share)$")


def _sections(report: Report) -> list[Section]:
    return [report.summary_section(), *report.sections]


def to_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([report.title, f"{report.query.first.isoformat()} 至 {report.query.last.isoformat()}"])
    for section in _sections(report):
        writer.writerow([])
        writer.writerow([section.title])
        writer.writerow([label for _, label in section.columns])
        for row in section.rows:
            writer.writerow(["" if row.get(k) is None else row.get(k) for k, _ in section.columns])
        if section.note:
            writer.writerow([f"说明：{section.note}"])
    for note in report.notes:
        writer.writerow([])
        writer.writerow([f"说明：{note}"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _sheet_title(title: str, used: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "", title)[:28] or "表"
    name, i = base, 2
    while name in used:
        name, i = f"{base[:26]}{i}", i + 1
    used.add(name)
    return name


def to_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Font  # type: ignore[import-untyped]

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    bold = Font(bold=True)
    for section in _sections(report):
        ws = wb.create_sheet(_sheet_title(section.title, used))
        ws.append([section.title, f"{report.query.first.isoformat()} 至 {report.query.last.isoformat()}"])
        ws.append([label for _, label in section.columns])
        for cell in ws[2]:
            cell.font = bold
        for row in section.rows:
            ws.append([row.get(k) for k, _ in section.columns])
            if section.id == "summary" and PERCENT_KEYS.search(str(row.get("key", ""))):
                ws.cell(ws.max_row, 2).number_format = "0.00%"
        for col, (key, _) in enumerate(section.columns, start=1):
            if PERCENT_KEYS.search(key):
                for r in range(3, ws.max_row + 1):
                    ws.cell(r, col).number_format = "0.00%"
            ws.column_dimensions[ws.cell(2, col).column_letter].width = 16 if col > 1 else 24
        if section.note:
            ws.append([])
            ws.append([f"说明：{section.note}"])
    if report.notes:
        ws = wb.create_sheet(_sheet_title("说明", used))
        for note in report.notes:
            ws.append([note])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
