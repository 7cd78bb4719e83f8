"""Draw a flow's DAG as text: layered left to right, box-drawing edges, `▶` at each target.

Layers come from the longest path, order within a layer from a few barycenter sweeps, and
each node sits on the row of its median input so chains stay straight. Between two layers
every fan-out gets its own vertical track next to the sources and every fan-in its own
track next to the target, so no vertical both splits and merges; where a line crosses a
track without joining it the vertical is broken and the horizontal drawn (`─`, never `┼`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby, pairwise

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

from tui.render.palette import STATES, Cell, clean, join_cells, style_of, truncate

__all__ = ["Node", "neighbours", "node_text", "render_dag", "render_indented"]

ACCENT, DIM, SELECTED = "bold bright_cyan", "dim", "reverse"
MAX_LABEL = 40
UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
HORIZONTAL, VERTICAL = LEFT | RIGHT, UP | DOWN
BOX = ["", "│", "│", "│", "─", "┘", "┐", "┤", "─", "└", "┌", "├", "─", "┴", "┬", "┼"]
# A route's corners name where they are across a gap: its start (the source's text end),
# its end (the target's text start), or a track: (0 split | 1 single | 2 merge, id).
START, END = (-1, 0), (3, 0)

Track = tuple[int, int]
Route = list[tuple[Track, int]]  # (where across the gap, row) corners, left to right
Seg = tuple[int, int, int]  # from, to (adjacent layers), the kept edge it belongs to
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


def _layers(count: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path layers; a cycle is broken at its first node instead of looping."""
    preds: list[list[int]] = [[] for _ in range(count)]
    succs: list[list[int]] = [[] for _ in range(count)]
    for a, b in pairs:
        preds[b].append(a)
        succs[a].append(b)
    waiting = [len(p) for p in preds]
    ready = deque(n for n in range(count) if not waiting[n])
    layer, done = [0] * count, [False] * count
    for _ in range(count):
        while ready and done[ready[0]]:
            ready.popleft()
        node = ready.popleft() if ready else done.index(False)
        done[node] = True
        layer[node] = max((layer[p] + 1 for p in preds[node] if done[p]), default=0)
        for succ in succs[node]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                ready.append(succ)
    return layer


def _place(
    count: int, pairs: list[tuple[int, int]]
) -> tuple[list[int], list[Seg], list[list[int]], list[int], list[tuple[int, int]]]:
    """Layer the nodes, carry long edges through dummies, order each layer, give rows.

    Returns each node's layer (dummies numbered after the real nodes), the one-layer
    segments, each layer's order, each node's row and the edges kept (no cycle closers).
    """
    layer_of = _layers(count, pairs)
    kept = [(a, b) for a, b in pairs if layer_of[a] < layer_of[b]]
    segs: list[Seg] = []
    for e, (a, b) in enumerate(kept):
        dummies = range(len(layer_of), len(layer_of) + layer_of[b] - layer_of[a] - 1)
        layer_of += range(layer_of[a] + 1, layer_of[b])
        segs += [(x, y, e) for x, y in pairwise([a, *dummies, b])]
    ups: list[list[int]] = [[] for _ in layer_of]
    downs: list[list[int]] = [[] for _ in layer_of]
    for a, b, _ in segs:
        ups[b].append(a)
        downs[a].append(b)
    order = _order(layer_of, segs, ups, downs)
    row = [0] * len(layer_of)  # each node on its median input's row, rows two apart
    for layer in order:
        free = 0
        for n in layer:
            above = sorted(row[m] for m in ups[n])
            row[n] = max(above[(len(above) - 1) // 2] if above else 0, free)
            free = row[n] + 2
    return layer_of, segs, order, row, kept


def _crossings(order: list[list[int]], segs: list[Seg]) -> int:
    pos = {n: i for layer in order for i, n in enumerate(layer)}
    ends = sorted((pos[a], pos[b]) for a, b, _ in segs)
    return sum(1 for i, x in enumerate(ends) for y in ends[i + 1 :] if y[1] < x[1])


def _order(
    layer_of: list[int], segs: list[Seg], ups: list[list[int]], downs: list[list[int]]
) -> list[list[int]]:
    """Order each layer by barycenter sweeps, down and up, keeping the fewest crossings."""
    order: list[list[int]] = [[] for _ in range(max(layer_of, default=0) + 1)]
    for node, layer in enumerate(layer_of):
        order[layer].append(node)
    gaps = [[s for s in segs if layer_of[s[0]] == g] for g in range(len(order))]
    best, fewest = [list(row) for row in order], sum(_crossings(order, g) for g in gaps)
    for sweep in range(4):
        down = sweep % 2 == 0
        near = ups if down else downs
        for layer in range(1, len(order)) if down else range(len(order) - 2, -1, -1):
            pos = {n: i for row in order for i, n in enumerate(row)}
            mean = {
                n: sum(pos[m] for m in near[n]) / len(near[n])
                for n in order[layer]
                if near[n]
            }
            order[layer].sort(key=lambda n: (mean.get(n, pos[n]), pos[n]))
        crossings = sum(_crossings(order, g) for g in gaps)
        if crossings < fewest:
            best, fewest = [list(layer) for layer in order], crossings
    return best


def _route(
    seg: tuple[int, int, int], row: list[int], fan: tuple[int, int], channels: set[int]
) -> Route:
    """Route one segment `(from, to, number)` as corners across its gap.

    A fan-out (`fan[0] > 1`) goes through the source's split track, a fan-in
    (`fan[1] > 1`) through the target's merge track, and both through a channel row.
    """
    a, b, i = seg
    ra, rb, s, m = row[a], row[b], (0, a), (2, b)
    if fan[0] > 1 and fan[1] > 1 and ra != rb:
        free = sorted(range(min(ra, rb) + 1, max(ra, rb), 2), key=lambda r: abs(r - rb))
        ch = next((r for r in free if r not in channels), free[0])
        channels.add(ch)
        return [(START, ra), (s, ra), (s, ch), (m, ch), (m, rb), (END, rb)]
    if fan[0] > 1 and fan[1] > 1:
        return [(START, ra), (s, ra), (m, rb), (END, rb)]
    if fan[0] > 1 or fan[1] > 1 or ra != rb:
        track = s if fan[0] > 1 else m if fan[1] > 1 else (1, i)
        return [(START, ra), (track, ra), (track, rb), (END, rb)]
    return [(START, ra), (END, rb)]


def _routes(gap: list[Seg], row: list[int]) -> tuple[list[Route], list[Track]]:
    """Route one gap's segments and order its tracks left to right.

    A route only moves right, and on each row the source's line must end before the
    target's line starts; within those rules splits come first and merges last.
    """
    outs, ins = Counter(a for a, _, _ in gap), Counter(b for _, b, _ in gap)
    channels: set[int] = set()  # odd rows between nodes, used by split-to-merge runs
    routes = [
        _route((a, b, i), row, (outs[a], ins[b]), channels)
        for i, (a, b, _) in enumerate(gap)
    ]
    rank = {  # prefer splits by source row, then singles, then merges by target row
        t: (t[0], route[-1][1] if t[0] == 2 else route[0][1])
        for route in routes
        for t, _ in route[1:-1]
    }
    before: dict[Track, set[Track]] = {t: set() for t in rank}
    for route in routes:
        tracks = list(dict.fromkeys(t for t, _ in route[1:-1]))
        for a, b in pairwise(tracks):
            before[b].add(a)
        for other in routes:
            ends_here = len(other) > 2 and other[-1][1] == route[0][1]
            if tracks and ends_here and other[-2][0] != tracks[0]:
                before[other[-2][0]].add(tracks[0])
    ordered: list[Track] = []
    while len(ordered) < len(rank):  # a cycle of rules breaks at the preferred track
        left = [t for t in rank if t not in ordered]
        free = [t for t in left if before[t] <= set(ordered)]
        ordered.append(min(free or left, key=lambda t: (rank[t], t)))
    return routes, ordered


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
    layer_of, segs, order, row, kept = _place(len(unique), pairs)
    texts = [node_text(node) for node in unique]
    texts += [("", "")] * (len(layer_of) - len(unique))
    widths = [max(cell_len(texts[n][0]) for n in layer) for layer in order]
    by_gap = [[s for s in segs if layer_of[s[0]] == g] for g in range(len(order) - 1)]
    gaps = [_routes(gap, row) for gap in by_gap]
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
            _paint(canvas, [(column[t], y) for t, y in route], e)
    width = x_at[-1] + widths[-1]
    blank: Run = (" ", -1, frozenset())
    grid = [[blank] * width for _ in range(max(row, default=-1) + 1)]
    for (x, y), arms in canvas.items():
        char, shown = _junction(arms)
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


def _paint(
    canvas: dict[tuple[int, int], dict[int, int]],
    points: list[tuple[int, int]],
    edge: int,
) -> None:
    """Add one edge's arms, cell by cell, along a path of horizontal and vertical runs."""
    for (x0, y0), (x1, y1) in pairwise(points):
        dx, dy = (x1 > x0) - (x1 < x0), (y1 > y0) - (y1 < y0)
        out = RIGHT if dx > 0 else LEFT if dx < 0 else DOWN if dy > 0 else UP
        back = {RIGHT: LEFT, LEFT: RIGHT, DOWN: UP, UP: DOWN}[out]
        while (x0, y0) != (x1, y1):
            for cell, arm in (((x0, y0), out), ((x0 + dx, y0 + dy), back)):
                arms = canvas.setdefault(cell, {})
                arms[edge] = arms.get(edge, 0) | arm
            x0, y0 = x0 + dx, y0 + dy


def _junction(arms: dict[int, int]) -> tuple[str, frozenset[int]]:
    """Return a cell's box character and the edges it shows.

    An edge that turns here makes the cell a real junction; otherwise a horizontal and a
    vertical only cross, and the horizontal wins.
    """
    if len(arms) > 1 and not any(
        m & HORIZONTAL and m & VERTICAL for m in arms.values()
    ):
        flat = {e: m & HORIZONTAL for e, m in arms.items() if m & HORIZONTAL}
        arms = flat or arms
    mask = 0
    for m in arms.values():
        mask |= m
    return BOX[mask], frozenset(arms)


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
