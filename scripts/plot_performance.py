#!/usr/bin/env python3
"""Draw the performance plot (docs/performance.svg) from a load-test CSV.

Two side-by-side panels: throughput (requests/s, linear y from 0) and p99
latency (ms, log10 y) against concurrency (log2 x), one line per target
(floor, memory, embedded, cosmos, or any other name found in the CSV).
Uses only the Python standard library; the SVG is written by hand.

Usage:
    python3 scripts/plot_performance.py target/perf/load.csv docs/performance.svg "2 cores, ..."

All arguments are optional: CSV path (default target/perf/load.csv), SVG path
(default docs/performance.svg) and a caption line (e.g. machine description).
CSV header: target,concurrency,requests,seconds,throughput_rps,p50_us,p99_us,max_us,errors
"""
import csv
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 960, 400
PANEL_W, TOP, BOTTOM = 480, 40, 300  # plot area spans y in [TOP, BOTTOM]
LEFT_PAD, RIGHT_PAD = 70, 20
KNOWN = {  # target -> (legend label, colour, dashed)
    "floor": ("HTTP floor (bare hyper)", "#7f7f7f", True),
    "memory": ("memory store", "#1f77b4", False),
    "embedded": ("embedded store", "#ff7f0e", False),
    "cosmos": ("Cosmos DB store (local test server)", "#2ca02c", False),
}
FALLBACK = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
REQUIRED = ["target", "concurrency", "throughput_rps", "p99_us"]


def fail(message):
    print(f"plot_performance: {message}", file=sys.stderr)
    sys.exit(2)


def load(path):
    """Return {target: [(concurrency, throughput_rps, p99_ms), ...]} sorted by concurrency."""
    if not path.is_file():
        fail(f"CSV not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            fail(f"{path} lacks column(s): {', '.join(missing)}")
        series = {}
        for n, row in enumerate(reader, start=2):
            try:
                point = (int(float(row["concurrency"])), float(row["throughput_rps"]),
                         float(row["p99_us"]) / 1000)
            except (TypeError, ValueError):
                fail(f"{path}:{n}: bad number in row {row}")
            series.setdefault(row["target"].strip(), []).append(point)
    if not series:
        fail(f"no data rows in {path}")
    order = [t for t in KNOWN if t in series] + [t for t in series if t not in KNOWN]
    return {t: sorted(series[t]) for t in order}


def style(target, index):
    label, colour, dashed = KNOWN.get(target, (target, FALLBACK[index % len(FALLBACK)], False))
    return label, colour, dashed


def nice_step(span, ticks=5):
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def fmt(v):
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def panel(x0, title, y_title, series, key, log_y, concurrencies):
    """Return SVG elements for one panel whose left edge is x0."""
    left, right = x0 + LEFT_PAD, x0 + PANEL_W - RIGHT_PAD
    lx = [math.log2(c) for c in concurrencies]
    lo_x, hi_x = (min(lx), max(lx)) if len(lx) > 1 else (lx[0] - 1, lx[0] + 1)
    inset = 20  # keep markers off the axis lines
    scale_x = (right - left - 2 * inset) / (hi_x - lo_x)
    to_x = lambda c: left + inset + (math.log2(c) - lo_x) * scale_x
    values = [p[key] for pts in series.values() for p in pts if not log_y or p[key] > 0]
    if log_y:
        lo_d = math.floor(math.log10(min(values))) if values else -1
        hi_d = math.ceil(math.log10(max(values))) if values else 2
        hi_d = max(hi_d, lo_d + 1)
        y_ticks = [10.0 ** d for d in range(lo_d, hi_d + 1)]
        to_y = lambda v: BOTTOM - (math.log10(v) - lo_d) / (hi_d - lo_d) * (BOTTOM - TOP)
    else:
        step = nice_step(max(values, default=0) or 1)
        top = step * math.ceil((max(values, default=0) or 1) / step)
        y_ticks = [i * step for i in range(round(top / step) + 1)]
        to_y = lambda v: BOTTOM - v / top * (BOTTOM - TOP)
    out = [f'<text x="{(left + right) / 2:.1f}" y="{TOP - 16}" text-anchor="middle" '
           f'font-size="15" font-weight="bold">{title}</text>']
    for v in y_ticks:
        y = to_y(v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    for c in concurrencies:
        x = to_x(c)
        out.append(f'<line x1="{x:.1f}" y1="{BOTTOM}" x2="{x:.1f}" y2="{BOTTOM + 5}" stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{BOTTOM + 18}" text-anchor="middle">{c}</text>')
    out.append(f'<polyline points="{left},{TOP} {left},{BOTTOM} {right},{BOTTOM}" '
               'fill="none" stroke="#333"/>')
    out.append(f'<text x="{(left + right) / 2:.1f}" y="{BOTTOM + 36}" text-anchor="middle">'
               'concurrency (log2 scale)</text>')
    mid = (TOP + BOTTOM) / 2
    out.append(f'<text x="{x0 + 16}" y="{mid}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 + 16} {mid})">{y_title}</text>')
    for i, (target, pts) in enumerate(series.items()):
        _, colour, dashed = style(target, i)
        xy = [(to_x(p[0]), to_y(p[key])) for p in pts if not log_y or p[key] > 0]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        if len(xy) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in xy]
    return out


def legend(series, y):
    """One centred row: coloured line sample + label per target."""
    items, widths = [], []
    for i, target in enumerate(series):
        label, colour, dashed = style(target, i)
        items.append((escape(label), colour, dashed))
        widths.append(34 + 6.5 * len(label) + 24)  # rough text width estimate
    x = max(10, (WIDTH - sum(widths)) / 2)
    out = []
    for (label, colour, dashed), w in zip(items, widths):
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x + 26:.1f}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<circle cx="{x + 13:.1f}" cy="{y}" r="3.5" fill="{colour}"/>')
        out.append(f'<text x="{x + 32:.1f}" y="{y + 4}">{label}</text>')
        x += w
    return out


def main(argv):
    src = Path(argv[1] if len(argv) > 1 else "target/perf/load.csv")
    dst = Path(argv[2] if len(argv) > 2 else "docs/performance.svg")
    caption = argv[3] if len(argv) > 3 else ""
    series = load(src)
    concurrencies = sorted({p[0] for pts in series.values() for p in pts})
    if concurrencies[0] <= 0:
        fail("concurrency must be a positive integer")
    body = [f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    body += panel(0, "Throughput", "requests/s", series, 1, False, concurrencies)
    body += panel(PANEL_W, "p99 latency", "p99 latency (ms, log scale)", series, 2, True,
                  concurrencies)
    body += legend(series, BOTTOM + 62)
    if caption:
        body.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" '
                    f'font-size="11" fill="#666">{escape(caption)}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" '
           'fill="#222">\n' + "\n".join(body) + "\n</svg>\n")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(svg, encoding="utf-8")
    print(dst)


if __name__ == "__main__":
    main(sys.argv)
