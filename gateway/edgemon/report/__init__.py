"""The daily compliance report (`edgemon report daily`), for enforcement staff and inspectors.

    days.py      calendar days in a time zone: a day's bounds in ms, local times shown (pure)
    coverage.py  records received / expected per node and the gaps (pure)
    content.py   the report's content from plain data: verdicts, hours, alarms, signatures (pure)
    source.py    reads InfluxDB (`aggregate`, `reading`, `alarm`) and the quarantine file
    render.py    the PDF (A4, text extractable) and the PNG, with matplotlib
    charts.py    one parameter's hourly chart (limit lines, flagged and invalid hours shaded)
    fonts.py     the CJK font from Debian's packages
    daily.py     write_daily_reports(): config -> source -> content -> render
"""


class ReportError(Exception):
    """A report that cannot be made; the message says why and what to do."""
