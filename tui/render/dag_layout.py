"""The DAG drawing's layout, on node numbers: longest-path layers, barycenter order,
rows, and the routes of the edges across each gap between layers, painted as box arms.

`tui.render.dag` numbers the nodes, calls these, and draws the text.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from itertools import pairwise

__all__ = [
    "BOX", "END", "START", "Route", "Seg", "Track", "crossings", "junction", "layers",
    "order_layers", "paint", "place", "route_edge", "route_gap",
]  # fmt: skip

UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
HORIZONTAL, VERTICAL = LEFT | RIGHT, UP | DOWN
BOX = ["", "│", "│", "│", "─", "┘", "┐", "┤", "─", "└", "┌", "├", "─", "┴", "┬", "┼"]
# A route's corners name where they are across a gap: its start (the source's text end),
# its end (the target's text start), or a track: (0 split | 1 single | 2 merge, id).
START, END = (-1, 0), (3, 0)

Track = tuple[int, int]
Route = list[tuple[Track, int]]  # (where across the gap, row) corners, left to right
Seg = tuple[int, int, int]  # from, to (adjacent layers), the kept edge it belongs to


def layers(count: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
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


def place(
    count: int, pairs: list[tuple[int, int]]
) -> tuple[list[int], list[Seg], list[list[int]], list[int], list[tuple[int, int]]]:
    """Layer the nodes, carry long edges through dummies, order each layer, give rows.

    Returns each node's layer (dummies numbered after the real nodes), the one-layer
    segments, each layer's order, each node's row and the edges kept (no cycle closers).
    """
    layer_of = layers(count, pairs)
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
    order = order_layers(layer_of, segs, ups, downs)
    row = [0] * len(layer_of)  # each node on its median input's row, rows two apart
    for layer in order:
        free = 0
        for n in layer:
            above = sorted(row[m] for m in ups[n])
            row[n] = max(above[(len(above) - 1) // 2] if above else 0, free)
            free = row[n] + 2
    return layer_of, segs, order, row, kept


def crossings(order: list[list[int]], segs: list[Seg]) -> int:
    pos = {n: i for layer in order for i, n in enumerate(layer)}
    ends = sorted((pos[a], pos[b]) for a, b, _ in segs)
    return sum(1 for i, x in enumerate(ends) for y in ends[i + 1 :] if y[1] < x[1])


def order_layers(
    layer_of: list[int], segs: list[Seg], ups: list[list[int]], downs: list[list[int]]
) -> list[list[int]]:
    """Order each layer by barycenter sweeps, down and up, keeping the fewest crossings."""
    order: list[list[int]] = [[] for _ in range(max(layer_of, default=0) + 1)]
    for node, layer in enumerate(layer_of):
        order[layer].append(node)
    gaps = [[s for s in segs if layer_of[s[0]] == g] for g in range(len(order))]
    best, fewest = [list(row) for row in order], sum(crossings(order, g) for g in gaps)
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
        count = sum(crossings(order, g) for g in gaps)
        if count < fewest:
            best, fewest = [list(layer) for layer in order], count
    return best


def route_edge(
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


def route_gap(gap: list[Seg], row: list[int]) -> tuple[list[Route], list[Track]]:
    """Route one gap's segments and order its tracks left to right.

    A route only moves right, and on each row the source's line must end before the
    target's line starts; within those rules splits come first and merges last.
    """
    outs, ins = Counter(a for a, _, _ in gap), Counter(b for _, b, _ in gap)
    channels: set[int] = set()  # odd rows between nodes, used by split-to-merge runs
    routes = [
        route_edge((a, b, i), row, (outs[a], ins[b]), channels)
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


def paint(
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


def junction(arms: dict[int, int]) -> tuple[str, frozenset[int]]:
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
