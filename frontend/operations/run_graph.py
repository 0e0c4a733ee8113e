"""A run's definition drawn as a graph, server-side, as inline SVG: no script, no library.

The layout is a simple layered one: each step sits one layer below the furthest of the steps that
lead to it (the longest path from the start, so a join sits below all its branches), and within a
layer steps are ordered by where the steps leading to them sit. Edges are drawn for ``next`` and for
every branch (condition then/else, parallel branches, fallback, timeout, reject, expiry, an empty
lookup, a failed child run); an edge into a join is dashed. Each node is coloured by its step run's
status and says the status in words too, so colour is never the only sign; the timeline beside it is
the text equivalent for screen readers. A template's diagram draws the same way, without statuses.

The definition is read as stored on the run (plain data), so a step kind added to the engine later is
still drawn, as a box with its key and kind.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

NODE_W, NODE_H = 168, 48
GAP_X, GAP_Y = 28, 56
PAD = 16
KEY_CHARS = 22
# How far an edge past a layer swings out to the side.
SIDE = NODE_W * 0.75
# (field of a step, the edge's label): the paths a step can take besides ``next``.
BRANCH_FIELDS = (
    ("then", "then"),
    ("else", "else"),
    ("fallback", "fallback"),
    ("on_timeout", "timeout"),
    ("on_reject", "rejected"),
    ("on_expired", "expired"),
    ("on_empty", "none found"),
    ("on_failure", "failed"),
)
# (fill, stroke) per step status; text is always dark on these light fills (WCAG AA).
COLOURS: dict[str | None, tuple[str, str]] = {
    "succeeded": ("#dff6dd", "#107c10"),
    "failed": ("#fde7e9", "#a4262c"),
    "running": ("#deecf9", "#1f4e79"),
    "queued": ("#deecf9", "#1f4e79"),
    "waiting": ("#fff4ce", "#8a6d00"),
    "scheduled": ("#fff4ce", "#8a6d00"),
    "skipped": ("#f3f2f1", "#605e5c"),
    "cancelled": ("#edebe9", "#605e5c"),
    None: ("#ffffff", "#a19f9d"),
}


@dataclass(slots=True)
class Node:
    key: str
    kind: str
    title: str
    status: str | None
    layer: int = 0
    slot: int = 0


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str
    into_join: bool


@dataclass(slots=True)
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    layers: list[list[str]] = field(default_factory=list)


def _steps(definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    steps = definition.get("steps")
    if not isinstance(steps, list):
        return []
    return [s for s in steps if isinstance(s, dict) and isinstance(s.get("key"), str)]


def _successors(step: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(target, label) of each path out of a step."""
    if isinstance(step.get("next"), str):
        yield step["next"], ""
    for name, label in BRANCH_FIELDS:
        if isinstance(step.get(name), str):
            yield step[name], label
    branches = step.get("branches")
    if isinstance(branches, list):
        for target in branches:
            if isinstance(target, str):
                yield target, "branch"


def layout(definition: Mapping[str, Any], statuses: Mapping[str, str]) -> Graph:
    """Nodes with their layer and slot, and the edges between them."""
    steps = _steps(definition)
    graph = Graph()
    if not steps:
        return graph
    for step in steps:
        key = step["key"]
        graph.nodes.setdefault(
            key, Node(key, str(step.get("kind", "?")), str(step.get("title") or ""), statuses.get(key))
        )
    joins = {k for k, n in graph.nodes.items() if n.kind == "join"}
    seen_edges: set[tuple[str, str]] = set()
    for step in steps:
        for target, label in _successors(step):
            if target in graph.nodes and target != step["key"] and (step["key"], target) not in seen_edges:
                seen_edges.add((step["key"], target))
                graph.edges.append(Edge(step["key"], target, label, target in joins))
    start = definition.get("start")
    start = start if isinstance(start, str) and start in graph.nodes else steps[0]["key"]

    # Longest path from the start, relaxed at most once per node per pass (a definition is checked
    # to be acyclic; the bound keeps a damaged one from looping).
    depth: dict[str, int] = {start: 0}
    out: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for e in graph.edges:
        out[e.source].append(e.target)
    for _ in range(len(graph.nodes)):
        changed = False
        for source, targets in out.items():
            if source not in depth:
                continue
            for target in targets:
                if depth.get(target, -1) < depth[source] + 1 <= len(graph.nodes):
                    depth[target] = depth[source] + 1
                    changed = True
        if not changed:
            break
    unreached = max(depth.values(), default=0) + 1
    for key in graph.nodes:  # a step nothing reaches (never in a checked definition) goes last
        depth.setdefault(key, unreached)

    order = {key: i for i, key in enumerate(graph.nodes)}
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for e in graph.edges:
        preds[e.target].append(e.source)
    layers: dict[int, list[str]] = {}
    for key in graph.nodes:
        layers.setdefault(depth[key], []).append(key)
    for level in sorted(layers):
        keys = layers[level]

        def place(key: str) -> tuple[float, int]:
            above = [graph.nodes[p].slot for p in preds[key] if depth[p] < depth[key]]
            return (sum(above) / len(above) if above else float(order[key]), order[key])

        keys.sort(key=place)
        for slot, key in enumerate(keys):
            graph.nodes[key].layer, graph.nodes[key].slot = level, slot
        graph.layers.append(keys)
    return graph


def _short(text: str, limit: int = KEY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_svg(
    definition: Mapping[str, Any], statuses: Mapping[str, str], *, label: str, idle: str = "not reached"
) -> Markup:
    """The graph as an ``<svg>`` element; ``label`` names it for screen readers; ``idle`` is what a step
    without a status says (a template's diagram, where nothing runs yet, says nothing)."""
    graph = layout(definition, statuses)
    if not graph.nodes:
        return Markup("")
    widest = max(len(layer) for layer in graph.layers)
    drawn = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X
    # Room on the right for the edges that swing out past a layer, and their labels.
    skips = any(graph.nodes[e.target].layer - graph.nodes[e.source].layer > 1 for e in graph.edges)
    width = drawn + (SIDE + 48 if skips else 0)
    height = PAD * 2 + len(graph.layers) * NODE_H + (len(graph.layers) - 1) * GAP_Y
    at: dict[str, tuple[float, float]] = {}
    for layer in graph.layers:
        row = len(layer) * NODE_W + (len(layer) - 1) * GAP_X
        left = (drawn - row) / 2
        for key in layer:
            node = graph.nodes[key]
            at[key] = (left + node.slot * (NODE_W + GAP_X), PAD + node.layer * (NODE_H + GAP_Y))

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="run-graph" role="img" aria-labelledby="run-graph-title"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}">',
        f'<title id="run-graph-title">{escape(label)}</title>',
        '<defs><marker id="run-graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#605e5c"/></marker></defs>',
    ]
    for edge in graph.edges:
        (sx, sy), (tx, ty) = at[edge.source], at[edge.target]
        x1, y1 = sx + NODE_W / 2, sy + NODE_H
        x2, y2 = tx + NODE_W / 2, ty
        if ty <= sy:  # an edge upwards (a damaged definition): leave from the side
            x1, y1 = sx + NODE_W, sy + NODE_H / 2
        bend = max(24.0, abs(y2 - y1) / 2)
        # An edge past a layer swings out to the side, around the steps between (it would cross them).
        side = SIDE if graph.nodes[edge.target].layer - graph.nodes[edge.source].layer > 1 else 0.0
        dash = ' stroke-dasharray="5 4"' if edge.into_join else ""
        parts.append(
            f'<path class="edge" d="M {x1:.1f} {y1:.1f} C {x1 + side:.1f} {y1 + bend:.1f} {x2 + side:.1f}'
            f' {y2 - bend:.1f} {x2:.1f} {y2 - 1:.1f}" fill="none" stroke="#605e5c" stroke-width="1.5"{dash}'
            ' marker-end="url(#run-graph-arrow)"/>'
        )
        if edge.label:
            parts.append(
                # Beside the curve's outermost point (a side edge) or just right of a straight one.
                f'<text class="edge-label" x="{(x1 + x2) / 2 + side * 0.75 + 5:.1f}" y="{(y1 + y2) / 2 + 4:.1f}"'
                ' text-anchor="start"'
                ' font-size="11" fill="#323130" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
                f"{escape(edge.label)}</text>"
            )
    for key, node in graph.nodes.items():
        x, y = at[key]
        fill, stroke = COLOURS.get(node.status, COLOURS[None])
        dash = ' stroke-dasharray="4 3"' if node.status == "skipped" or (node.status is None and idle) else ""
        status = node.status or idle
        tip = f"{key} ({node.kind})" + (f": {status}" if status else "") + (f" · {node.title}" if node.title else "")
        parts.append(
            f'<g class="node status-{escape(node.status or "none")}" data-step="{escape(key)}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}"'
            f' stroke="{stroke}" stroke-width="2"{dash}/>'
            f'<text x="{x + 10:.1f}" y="{y + 20:.1f}" font-size="13" font-weight="600" fill="#1b1b1b">'
            f"{escape(_short(key))}</text>"
            f'<text x="{x + 10:.1f}" y="{y + 38:.1f}" font-size="12" fill="#323130">'
            f"{escape(_short(f'{node.kind} · {status}' if status else node.kind, KEY_CHARS + 2))}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every value above is escaped or a number we computed
