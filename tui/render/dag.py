"""Draw a flow's DAG as text: layered left to right, box-drawing edges, `▶` at each target.

Layers come from the longest path, order within a layer from a few barycenter sweeps, and
each node sits on the row of its median input so chains stay straight. Between two layers
every fan-out gets its own vertical track next to the sources and every fan-in its own
track next to the target, so no vertical both splits and merges; where a line crosses a
track without joining it the vertical is broken and the horizontal drawn (`─`, never `┼`).
This module numbers the nodes and draws; `tui.render.dag_layout` does the layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

from tui.render.dag_layout import END, START, junction, paint, place, route_gap
from tui.render.palette import STATES, Cell, clean, join_cells, style_of, truncate

__all__ = ["Node", "neighbours", "node_text", "render_dag", "render_indented"]

ACCENT, DIM, SELECTED = "bold bright_cyan", "dim", "reverse"
MAX_LABEL = 40
Run = tuple[str, int, frozenset[int]]  # text, its node (or -1), the kept edges it shows


@dataclass(frozen=True)
class Node:
    """One task in the drawing."""

    key: str
    """The task's identity; edges name nodes by key."""
    label: str
    """What is shown; user text, drawn literally."""
    state: str
    """A state name from the palette."""
    mapped: tuple[int, int, int] | None = None
    """For a mapped task, its children's counts: succeeded, failed, running."""


def node_text(node: Node) -> tuple[str, str]:
    """Return a node's text (`glyph label`, `glyph label[✓12 ✗1 ▶3]`) and its style."""
    style = style_of(node.state)
    label, color = truncate(clean(node.label), MAX_LABEL), style.color
    if node.mapped is not None:
        _, failed, running = node.mapped
        counts = [f"{g}{n}" for g, n in zip("✓✗▶", node.mapped, strict=True) if n]
        label += f"[{' '.join(counts) or '0'}]"
        if node.state == "Mapped":  # the parent's colour is its children's mix
            mix = "Failed" if failed else "Running" if running else "Success"
            color = STATES[mix].color
    return f"{style.glyph} {label}", color


def neighbours(
    edges: Sequence[tuple[str, str]], key: str
) -> tuple[list[str], list[str]]:
    """Return the keys upstream and downstream of `key`, in edge order, each once."""
    up = dict.fromkeys(a for a, b in edges if b == key and a != key)
    down = dict.fromkeys(b for a, b in edges if a == key and b != key)
    return list(up), list(down)


def _graph(
    nodes: Sequence[Node], edges: Sequence[tuple[str, str]]
) -> tuple[list[Node], list[tuple[int, int]]]:
    """Number the nodes (the first of each key wins); keep known, distinct, non-loop edges."""
    index: dict[str, int] = {}
    unique: list[Node] = []
    for node in nodes:
        if node.key not in index:
            index[node.key] = len(unique)
            unique.append(node)
    pairs = [(index[a], index[b]) for a, b in edges if a in index and b in index]
    return unique, list(dict.fromkeys((a, b) for a, b in pairs if a != b))


@dataclass(frozen=True)
class _Drawing:
    """A laid-out DAG before styling: cached, so moving the selection is cheap.

    Each row is a list of runs `(text, node or -1, edges shown)`: a node's text, or lines
    showing the same kept edges, or blanks.
    """

    rows: list[list[Run]]
    styles: list[str]
    index: dict[str, int]
    kept: list[tuple[int, int]]


def render_dag(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str]],
    *,
    selected: str | None = None,
    color: bool = True,
    max_nodes: int = 60,
) -> list[Text]:
    """Draw the DAG left to right, one Text per line (trailing spaces stripped).

    With `selected`, that node's in- and out-edges are drawn bold in the accent colour
    and every other edge dimmed. More than `max_nodes` nodes fall back to
    `render_indented`. Edges that would close a cycle are left out.
    """
    if len(nodes) > max_nodes:
        return render_indented(nodes, edges, selected=selected, color=color)
    if not nodes:
        return []
    drawing = _layout(tuple(nodes), tuple((a, b) for a, b in edges))
    sel = drawing.index.get(selected) if selected is not None else None
    lit = {e for e, pair in enumerate(drawing.kept) if sel in pair}
    result: list[Text] = []
    for runs in drawing.rows:
        cells: list[Cell] = []
        for chunk, owner, shown in runs:
            style = ""
            if owner >= 0:
                style = drawing.styles[owner]
                style = f"{style} {SELECTED}".strip() if owner == sel else style
            elif shown and sel is not None:
                style = ACCENT if shown & lit else DIM
            cells.append((chunk, style))
        result.append(join_cells(cells, color))
        result[-1].rstrip()
    return result


@lru_cache(maxsize=16)
def _layout(nodes: tuple[Node, ...], edges: tuple[tuple[str, str], ...]) -> _Drawing:
    """Place the nodes, route the edges and draw both as characters."""
    unique, pairs = _graph(nodes, edges)
    layer_of, segs, order, row, kept = place(len(unique), pairs)
    texts = [node_text(node) for node in unique]
    texts += [("", "")] * (len(layer_of) - len(unique))
    widths = [max(cell_len(texts[n][0]) for n in layer) for layer in order]
    by_gap = [[s for s in segs if layer_of[s[0]] == g] for g in range(len(order) - 1)]
    gaps = [route_gap(gap, row) for gap in by_gap]
    x_at = [0]
    for g, (_, tracks) in enumerate(gaps):
        x_at.append(x_at[g] + widths[g] + 3 * len(tracks) + 3)
    canvas: dict[tuple[int, int], dict[int, int]] = {}  # cell -> edge -> arms
    for g, (routes, tracks) in enumerate(gaps):
        column = {t: x_at[g] + widths[g] + 2 + 3 * i for i, t in enumerate(tracks)}
        for (a, _, e), route in zip(by_gap[g], routes, strict=True):
            column[START], column[END] = (
                x_at[g] + cell_len(texts[a][0]) - 1,
                x_at[g + 1],
            )
            paint(canvas, [(column[t], y) for t, y in route], e)
    width = x_at[-1] + widths[-1]
    blank: Run = (" ", -1, frozenset())
    grid = [[blank] * width for _ in range(max(row, default=-1) + 1)]
    for (x, y), arms in canvas.items():
        char, shown = junction(arms)
        grid[y][x] = (char, -1, shown)
    targets = {b for _, b, _ in segs}
    for n, (text, _) in enumerate(texts[: len(unique)]):
        x, y = x_at[layer_of[n]], row[n]
        if n in targets:
            grid[y][x - 1] = ("▶", -1, grid[y][x - 1][2])
        for char in text:
            size = get_character_cell_size(char)
            if size == 0:  # a combining mark joins the cell before it
                grid[y][x - 1] = (grid[y][x - 1][0] + char, n, frozenset())
                continue
            grid[y][x], x = (char, n, frozenset()), x + 1
            if size == 2:
                grid[y][x], x = ("", n, frozenset()), x + 1
    rows = [_runs(line) for line in grid]
    index = {node.key: n for n, node in enumerate(unique)}
    return _Drawing(rows, [s for _, s in texts], index, kept)


def _runs(cells: list[Run]) -> list[Run]:
    """Merge neighbouring cells of the same node, or showing the same edges, into runs."""
    return [
        ("".join(char for char, _, _ in run), owner, shown)
        for (owner, shown), run in groupby(cells, lambda cell: (cell[1], cell[2]))
    ]


def render_indented(
    nodes: Sequence[Node],
    edges: Sequence[tuple[str, str]],
    *,
    selected: str | None = None,
    color: bool = True,
) -> list[Text]:
    """Draw the DAG as an indented tree (networkx style): each node once, `↑ label` after.

    Roots come in the given order; a node reached again, or a cycle, shows as `↑ label`.
    """
    unique, pairs = _graph(nodes, edges)
    succs: list[list[int]] = [[] for _ in unique]
    for a, b in pairs:
        succs[a].append(b)
    has_input = {b for _, b in pairs}
    roots = [n for n in range(len(unique)) if n not in has_input]
    roots += range(len(unique))  # then whatever a cycle kept unreached
    seen: set[int] = set()
    lines: list[Text] = []
    for root in roots:
        stack = [] if root in seen else [(root, "", "")]
        while stack:
            n, lead, branch = stack.pop()
            line = Text(lead + branch)
            if n in seen:
                label = truncate(clean(unique[n].label), MAX_LABEL)
                line.append(f"↑ {label}", DIM if color else None)
                lines.append(line)
                continue
            seen.add(n)
            text, style = node_text(unique[n])
            style += f" {SELECTED}" if unique[n].key == selected else ""
            line.append(text, style.strip() if color and style.strip() else None)
            lines.append(line)
            inner = lead + {"└─ ": "   ", "├─ ": "│  "}.get(branch, "")
            for i, kid in reversed(list(enumerate(succs[n]))):
                stack.append((kid, inner, "└─ " if i == len(succs[n]) - 1 else "├─ "))
    return lines
