"""Finance charts drawn on the server as SVG (no chart library, nothing to load in the browser).

Usage by meter is drawn as small multiples: one row of daily bars per meter, each on its own scale
(events run to thousands while seats stay in tens, one shared axis would flatten all but one). The
margin chart puts each customer's retail revenue and wholesale cost side by side on one money scale.
Every chart has a ``<title>`` and ``<desc>``, every series and bar an accessible name, and the pages
show the same numbers in a table under the chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

LABEL_W = 190
ROW_H = 46
BAR_GAP = 2
PAD = 8
PLOT_W = 560
# Colour-blind-safe pair (Okabe-Ito), both at least 3:1 against white.
RETAIL_COLOUR = "#0072b2"
WHOLESALE_COLOUR = "#d55e00"
BAR_COLOUR = "#0e5a8a"


@dataclass(frozen=True, slots=True)
class Series:
    key: str
    title: str
    unit: str
    points: Mapping[str, int]
    # Days add up (a sum meter) or not (a gauge, distinct values).
    additive: bool = True


def usage_chart(series: Sequence[Series], days: Sequence[str], *, label: str) -> Markup:
    """One row per meter, one bar per day of ``days`` (a day without usage draws no bar)."""
    if not series or not days:
        return Markup("")
    height = PAD * 2 + ROW_H * len(series) + 16
    width = LABEL_W + PLOT_W + PAD * 2
    step = PLOT_W / len(days)
    bar = max(1.0, step - BAR_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img"'
        f' aria-labelledby="usage-chart-title usage-chart-desc" viewBox="0 0 {width} {height}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet">',
        f'<title id="usage-chart-title">{escape(label)}</title>',
        f'<desc id="usage-chart-desc">Daily usage from {escape(days[0])} to {escape(days[-1])}, one row per meter,'
        " each on its own scale. The same numbers are in the table below.</desc>",
    ]
    for row, s in enumerate(series):
        top = PAD + row * ROW_H
        peak = max(s.points.values(), default=0)
        total = sum(s.points.values())
        name = f"{s.title}: up to {peak:,} {s.unit}(s) a day"
        parts.append(f'<g class="series" data-meter="{escape(s.key)}" aria-label="{escape(name)}">')
        parts.append(
            f'<text x="{PAD}" y="{top + 18}" font-size="13" font-weight="600" fill="#1b1b1b">{escape(s.title)}</text>'
            f'<text x="{PAD}" y="{top + 34}" font-size="11" fill="#484644">'
            f"{format(total, ',') + ' in all · ' if s.additive else ''}peak {peak:,}</text>"
        )
        base = top + ROW_H - 8
        parts.append(
            f'<line x1="{LABEL_W}" y1="{base}" x2="{LABEL_W + PLOT_W}" y2="{base}" stroke="#8a8886" stroke-width="1"/>'
        )
        for index, day in enumerate(days):
            value = s.points.get(day)
            if not value or not peak:
                continue
            tall = max(1.0, (ROW_H - 14) * value / peak)
            x = LABEL_W + index * step
            parts.append(
                f'<rect x="{x:.1f}" y="{base - tall:.1f}"'
                f' width="{bar:.1f}" height="{tall:.1f}" fill="{BAR_COLOUR}"><title>{escape(s.title)},'
                f" {escape(day)}: {value:,}</title></rect>"
            )
        parts.append("</g>")
    parts.append(
        f'<text x="{LABEL_W}" y="{height - 4}" font-size="11" fill="#484644">{escape(days[0])}</text>'
        f'<text x="{LABEL_W + PLOT_W}" y="{height - 4}" font-size="11" fill="#484644" text-anchor="end">'
        f"{escape(days[-1])}</text></svg>"
    )
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or a number we computed


@dataclass(frozen=True, slots=True)
class MarginBar:
    customer: str
    retail: int
    wholesale: int
    retail_text: str
    wholesale_text: str


def margin_chart(bars: Sequence[MarginBar], *, label: str) -> Markup:
    """Per customer two horizontal bars on one scale: retail revenue above, wholesale cost below."""
    if not bars:
        return Markup("")
    group = 44
    height = PAD * 2 + group * len(bars) + 22
    width = LABEL_W + PLOT_W + PAD * 2 + 120
    peak = max(max(b.retail, b.wholesale) for b in bars) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="margin-chart" role="img"'
        f' aria-labelledby="margin-chart-title margin-chart-desc" viewBox="0 0 {width} {height}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet">',
        f'<title id="margin-chart-title">{escape(label)}</title>',
        '<desc id="margin-chart-desc">For each customer, retail revenue (blue, upper bar) and wholesale cost'
        " (orange, lower bar) on one scale. The same numbers are in the table below.</desc>",
    ]
    for row, b in enumerate(bars):
        top = PAD + row * group
        parts.append(f'<g class="customer" aria-label="{escape(b.customer)}">')
        parts.append(f'<text x="{PAD}" y="{top + 22}" font-size="13" fill="#1b1b1b">{escape(b.customer[:28])}</text>')
        for offset, (value, text, colour, kind) in enumerate(
            (
                (b.retail, b.retail_text, RETAIL_COLOUR, "retail"),
                (b.wholesale, b.wholesale_text, WHOLESALE_COLOUR, "wholesale"),
            )
        ):
            wide = max(0.0, PLOT_W * max(value, 0) / peak)
            y = top + 6 + offset * 17
            parts.append(
                f'<rect class="{kind}" x="{LABEL_W}" y="{y}" width="{wide:.1f}" height="14" fill="{colour}">'
                f"<title>{escape(b.customer)}, {kind}: {escape(text)}</title></rect>"
                f'<text x="{LABEL_W + wide + 6:.1f}" y="{y + 11}" font-size="11" fill="#323130">{escape(text)}</text>'
            )
        parts.append("</g>")
    legend = height - 6
    parts.append(
        f'<rect x="{LABEL_W}" y="{legend - 10}" width="12" height="12" fill="{RETAIL_COLOUR}"/>'
        f'<text x="{LABEL_W + 16}" y="{legend}" font-size="11" fill="#323130">Retail revenue</text>'
        f'<rect x="{LABEL_W + 130}" y="{legend - 10}" width="12" height="12" fill="{WHOLESALE_COLOUR}"/>'
        f'<text x="{LABEL_W + 146}" y="{legend}" font-size="11" fill="#323130">Wholesale cost</text></svg>'
    )
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or a number we computed
