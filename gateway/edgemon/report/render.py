"""A DailyReport as a PDF (A4 pages: tables, then the hourly charts; TrueType fonts embedded as Type 42,
so the text can be searched and extracted) and a PNG (a one-image summary with the charts)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from .charts import LEGEND, VERDICT_COLOURS, draw_hours, shown
from .content import EXCEED, INVALID, NOT_JUDGED, PASS, DailyReport, number, unit_text
from .days import local_text
from .fonts import find_cjk_font

W, H = 8.27, 11.69  # A4, inches
LEFT, RIGHT, TOP, BOTTOM = 0.55, 0.55, 0.6, 0.75
MAX_GAP_ROWS = 200
BASIS = {"daily_mean": "标准按日均值判定", "sample": "标准按单次监测值判定；本表按日均值"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt
    font = find_cjk_font()
    font_manager.fontManager.addfont(str(font))
    name = font_manager.FontProperties(fname=str(font)).get_name()
    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "font.family": [name, "DejaVu Sans"],
                         "axes.unicode_minus": False})
    return plt


def text_width(text: str, size: float) -> float:
    """Estimated width in inches: CJK characters are square, others about half as wide."""
    return sum(size if ord(ch) >= 0x2E80 else 0.55 * size for ch in text) / 72


def wrap(text: str, width_in: float, size: float) -> list[str]:
    lines, line = [], ""
    for ch in text:
        if text_width(line + ch, size) > width_in and line:
            lines.append(line)
            line = ""
        line += ch
    return lines + [line] if line or not lines else lines


class Flow:
    """Text and tables laid out top to bottom on A4 pages, a new page when one is full."""

    def __init__(self, plt, header: str):
        self.plt, self.header, self.figs = plt, header, []
        self._page()

    def _page(self):
        self.fig = self.plt.figure(figsize=(W, H))
        self.figs.append(self.fig)
        self.fig.text(LEFT / W, 1 - 0.35 / H, shown(self.header), fontsize=7, color="#555555")
        self.y = TOP

    def need(self, h: float):
        if self.y + h > H - BOTTOM:
            self._page()

    def _at(self, x_in: float, y_in: float, text: str, size: float, **kw):
        self.fig.text(x_in / W, 1 - y_in / H, shown(text), fontsize=size, va="top", **kw)

    def text(self, text: str, size: float = 9, color: str = "black", indent: float = 0.0):
        width = W - LEFT - RIGHT - indent
        for line in wrap(text, width, size):
            h = size * 1.55 / 72
            self.need(h)
            self._at(LEFT + indent, self.y, line, size, color=color)
            self.y += h

    def heading(self, text: str):
        self.need(0.7)
        self.y += 0.12
        self.text(text, size=12, color="#1f4e79")
        self.y += 0.04

    def table(self, columns: list[tuple[str, float]], rows: list[list[str]], colours: list[dict] | None = None,
              size: float = 8):
        """columns: (title, width in inches); colours: per row, column index -> text colour."""
        lh = size * 1.5 / 72
        total = sum(w for _, w in columns)

        def header():
            self.need(2 * lh)
            self.fig.patches.append(self.plt.Rectangle(
                (LEFT / W, 1 - (self.y + lh + 0.02) / H), total / W, (lh + 0.04) / H, transform=self.fig.transFigure,
                color="#e5e8e8", zorder=0))
            x = LEFT
            for title, w in columns:
                self._at(x + 0.03, self.y, title, size)
                x += w
            self.y += lh + 0.06

        header()
        for k, row in enumerate(rows):
            cells = [wrap(str(v), w - 0.06, size) for v, (_, w) in zip(row, columns)]
            h = max(len(c) for c in cells) * lh + 0.03
            if self.y + h > H - BOTTOM:
                self._page()
                header()
            x = LEFT
            for i, (lines, (_, w)) in enumerate(zip(cells, columns)):
                colour = (colours[k].get(i) if colours else None) or "black"
                for j, line in enumerate(lines):
                    self._at(x + 0.03, self.y + j * lh, line, size, color=colour)
                x += w
            self.y += h
        self.y += 0.08


def _overview(r: DailyReport, tz: ZoneInfo) -> list[str]:
    day = r.day.isoformat()
    lines = [f"站点：{r.site_name}（{r.site}）    日期：{day}（{r.tz}，当日 00:00 至 24:00）",
             f"限值标准：{r.profile}；{BASIS.get(r.basis, r.basis)}" if r.profile else "限值标准：未配置"]
    if r.until_ms is not None:
        lines.append(f"注意：当日尚未结束，数据截至 {local_text(r.until_ms, tz, '%H:%M')}。")
    lines.append(f"结论：达标 {r.count(PASS)} 项，超标 {r.count(EXCEED)} 项，无效 {r.count(INVALID)} 项，"
                 f"无限值 {r.count(NOT_JUDGED)} 项")
    return lines


def _signature_lines(r: DailyReport) -> list[str]:
    s = r.signatures
    checked = "签名已校验" if s.required else "未校验签名"
    return [f"签名要求：{'是' if s.required else '否'}（{s.basis}）",
            f"接受的记录（{checked}）：{s.accepted} 条",
            f"因签名被拒的记录：{s.refused} 条（缺少签名 {s.refused_missing} 条，签名不符 {s.refused_bad} 条；"
            f"共 {s.refused_payloads} 个数据消息）",
            f"因签名被拒的状态/事件消息：{s.refused_other} 条；其他原因隔离的消息：{s.quarantined_other} 条"
            "（edgemon quarantine list 查看）"]


def _coverage_line(r: DailyReport) -> str:
    return "；".join(f"{c.node} 收到/应收 {c.received}/{c.expected}（{c.percent:.1f}%），缺测 {len(c.gaps)} 段"
                     for c in r.coverage)


def _pages(plt, r: DailyReport, tz: ZoneInfo) -> list:
    flow = Flow(plt, f"{r.site_name}（{r.site}） {r.day.isoformat()} 污染源在线监测日报")
    flow.text("污染源在线监测 日合规报告", size=17)
    flow.y += 0.08
    for line in _overview(r, tz):
        flow.text(line, size=10, color="#c0392b" if line.startswith("结论") and r.count(EXCEED) else "black")
    flow.text(f"生成时间：{local_text(r.generated_ms, tz, '%Y-%m-%d %H:%M:%S')}（{r.tz}）；数据：InfluxDB 日/小时"
              "均值（aggregate）、原始记录（reading）、报警（alarm），网关隔离文件（quarantine.jsonl）", size=7.5,
              color="#555555")
    for note in r.notes:
        flow.text(f"说明：{note}", size=8, color="#555555")

    flow.heading("一、日均值与限值")
    with_cou = any(row.cou is not None for row in r.rows)
    cols = [("参数", 1.35), ("代码", 0.62), ("节点", 0.7), ("日均值", 0.7), ("单位", 0.6), ("限值", 1.05),
            ("判定", 0.5), ("说明", 1.1 if with_cou else 1.6)] + ([("日排放量", 0.55)] if with_cou else [])
    rows, colours = [], []
    for row in r.rows:
        cells = [row.info.name, row.param, row.node, number(row.value), unit_text(row.info.unit), row.limit_text,
                 row.verdict, row.note]
        if with_cou:
            cells.append("" if row.cou is None else f"{number(row.cou)} {row.cou_unit}")
        rows.append(cells)
        colours.append({6: VERDICT_COLOURS.get(row.verdict)})
    flow.table(cols, rows, colours) if rows else flow.text("当日无任何参数的数据。")

    flow.heading("二、数据完整性")
    flow.table([("节点", 1.2), ("采样周期", 0.9), ("收到/应收", 1.3), ("完整率", 0.9), ("缺测段（>3个周期）", 1.6)],
               [[c.node + ("" if c.configured else "（未在配置中）"), f"{number(c.poll_s)} 秒",
                 f"{c.received}/{c.expected}", f"{c.percent:.1f}%", f"{len(c.gaps)} 段"] for c in r.coverage])
    gaps = [(c.node, g) for c in r.coverage for g in c.gaps]
    if gaps:
        def fmt(ms: int) -> str:
            return "24:00:00" if ms == r.end_ms else local_text(ms, tz)
        flow.table([("节点", 1.2), ("缺测开始（最后一条记录）", 2.0), ("缺测结束（下一条记录）", 2.0), ("时长", 1.2)],
                   [[n, fmt(g.start_ms), fmt(g.end_ms), f"{g.seconds / 60:.1f} 分钟"] for n, g in gaps[:MAX_GAP_ROWS]])
        if len(gaps) > MAX_GAP_ROWS:
            flow.text(f"……另有 {len(gaps) - MAX_GAP_ROWS} 段缺测未列出。", size=8)
    else:
        flow.text("无缺测段。", size=9)

    flow.heading("三、数据签名校验")
    for line in _signature_lines(r):
        flow.text(line, size=9)

    flow.heading("四、当日报警")
    if r.alarms:
        flow.table([("时间", 0.75), ("状态", 0.45), ("参数", 1.0), ("节点", 0.65), ("规则", 0.65), ("监测值", 0.6),
                    ("限值", 0.5), ("信息", 2.57)],
                   [[local_text(a.time_ms, tz), a.state, a.param_name, a.node, a.rule, number(a.value),
                     number(a.limit), a.message] for a in r.alarms],
                   [{1: "#c0392b" if a.state == "触发" else "#1e8449"} for a in r.alarms], size=7.5)
    else:
        flow.text("当日无报警。", size=9)

    figs = list(flow.figs)
    per_page, cols_n = 8, 2
    for first in range(0, len(r.rows), per_page):
        fig = plt.figure(figsize=(W, H))
        fig.text(LEFT / W, 1 - 0.35 / H, shown(flow.header), fontsize=7, color="#555555")
        fig.text(LEFT / W, 1 - 0.62 / H, "五、逐时均值" + ("（续）" if first else ""), fontsize=12, color="#1f4e79")
        fig.text(LEFT / W, 1 - 0.88 / H, LEGEND, fontsize=7)
        chunk = r.rows[first:first + per_page]
        grid = fig.add_gridspec(per_page // cols_n, cols_n, left=0.08, right=0.96, top=0.9, bottom=0.07,
                                hspace=0.55, wspace=0.25)
        for k, row in enumerate(chunk):
            draw_hours(fig.add_subplot(grid[k // cols_n, k % cols_n]), row, tz)
        figs.append(fig)
    for i, fig in enumerate(figs, 1):
        fig.text(0.5, 0.4 / H, f"第 {i} 页 / 共 {len(figs)} 页", fontsize=7, ha="center", color="#555555")
    return figs


def write_pdf(r: DailyReport, path: Path) -> Path:
    plt = _pyplot()
    from matplotlib.backends.backend_pdf import PdfPages
    tz = ZoneInfo(r.tz)
    figs = _pages(plt, r, tz)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with PdfPages(tmp, metadata={"Title": f"{r.site_name} {r.day.isoformat()} 污染源在线监测日报",
                                     "Creator": "edgemon report daily"}) as pdf:
            for fig in figs:
                pdf.savefig(fig)
        tmp.replace(path)
    finally:
        for fig in figs:
            plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def write_png(r: DailyReport, path: Path, dpi: int = 100) -> Path:
    """One image: the overview, completeness and signature lines, then a chart per parameter."""
    plt = _pyplot()
    tz = ZoneInfo(r.tz)
    cols = 3
    chart_rows = max(1, -(-len(r.rows) // cols))
    head = 2.3
    fig = plt.figure(figsize=(13, head + 2.4 * chart_rows))
    total_h = head + 2.4 * chart_rows
    y = 0.3
    fig.text(0.3 / 13, 1 - y / total_h, shown(f"污染源在线监测 日合规报告  {r.site_name}（{r.site}） {r.day.isoformat()}"),
             fontsize=15, va="top")
    y += 0.45
    s = r.signatures
    lines = _overview(r, tz)[1:] + [f"数据完整性：{_coverage_line(r)}",
                                    f"签名校验：{'要求签名' if s.required else '未要求签名'}；接受 {s.accepted} 条记录，"
                                    f"因签名被拒 {s.refused} 条；当日报警 {len(r.alarms)} 条", LEGEND]
    for line in lines:
        fig.text(0.3 / 13, 1 - y / total_h, shown(line), fontsize=9.5, va="top",
                 color="#c0392b" if line.startswith("结论") and r.count(EXCEED) else "black")
        y += 0.26
    grid = fig.add_gridspec(chart_rows, cols, left=0.05, right=0.98, top=1 - (head + 0.15) / total_h,
                            bottom=0.35 / total_h, hspace=0.6, wspace=0.22)
    for k, row in enumerate(r.rows):
        draw_hours(fig.add_subplot(grid[k // cols, k % cols]), row, tz, size=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
