"""The DAG drawing: layout, tracks, highlighting, fallbacks and hostile labels."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

from tui.render.dag import Node, neighbours, render_dag, render_indented

NODES = [
    Node("extract_a", "extract_a", "Success"),
    Node("extract_b", "extract_b", "Success"),
    Node("transform", "transform", "Success"),
    Node("audit", "audit", "Failed"),
    Node("load_db", "load_db", "Running"),
    Node("validate", "validate", "Success"),
    Node("report", "report", "TriggerFailed"),
]
EDGES = [
    ("extract_a", "transform"),
    ("extract_b", "transform"),
    ("extract_b", "audit"),
    ("transform", "load_db"),
    ("transform", "validate"),
    ("load_db", "report"),
    ("validate", "report"),
]


def plain(lines: list[Text]) -> list[str]:
    return [line.plain for line in lines]


def styled(line: Text) -> list[tuple[str, str]]:
    return [(line.plain[s.start : s.end], str(s.style)) for s in line.spans]


def simple(keys: str) -> list[Node]:
    return [Node(key, key, "Success") for key in keys]


def test_the_tui_md_example() -> None:
    # extract_b's fan-out splits on its own track; transform's fan-in merges on another,
    # reached through the row between the nodes: no line reads as extract_a -> audit.
    assert plain(render_dag(NODES, EDGES, color=False)) == [
        "✓ extract_a─────┬──▶✓ transform──┬──▶▶ load_db───┬──▶⊘ report",
        "             ┌──┘                │               │",
        "✓ extract_b──┴─────▶✗ audit      └──▶✓ validate──┘",
    ]


def test_no_color_has_no_spans_even_with_a_selection() -> None:
    for line in render_dag(NODES, EDGES, selected="transform", color=False):
        assert line.spans == []


def test_nodes_take_their_state_colour() -> None:
    first = render_dag(NODES, EDGES)[0]
    assert styled(first) == [
        ("✓ extract_a", "green"),
        ("✓ transform", "green"),
        ("▶ load_db", "cyan"),
        ("⊘ report", "dark_orange"),
    ]


def test_the_selected_nodes_edges_are_lit_and_the_rest_dimmed() -> None:
    lines = render_dag(NODES, EDGES, selected="transform")
    lit, dim = "bold bright_cyan", "dim"
    assert styled(lines[0]) == [
        ("✓ extract_a", "green"), ("─────┬──▶", lit), ("✓ transform", "green reverse"),
        ("──┬──▶", lit), ("▶ load_db", "cyan"), ("───┬──▶", dim), ("⊘ report", "dark_orange"),
    ]  # fmt: skip
    assert styled(lines[1]) == [("┌──┘", lit), ("│", lit), ("│", dim)]
    assert styled(lines[2]) == [
        ("✓ extract_b", "green"), ("──┴", lit), ("─────▶", dim), ("✗ audit", "bold red"),
        ("└──▶", lit), ("✓ validate", "green"), ("──┘", dim),
    ]  # fmt: skip


def test_a_crossing_breaks_the_vertical() -> None:
    edges = [("a", "d"), ("b", "e"), ("a", "f"), ("c", "f"), ("c", "d")]
    assert plain(render_dag(simple("abcdef"), edges, color=False)) == [
        "✓ a──┬─────┬─────▶✓ d",
        "     │  ┌──┘",
        "✓ b──────────────▶✓ e",  # two verticals cross here; the horizontal wins
        "     └────────┐",
        "✓ c─────┴─────┴──▶✓ f",
    ]


def test_a_long_edge_runs_past_the_layers_between() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d"), ("a", "e")]
    assert plain(render_dag(simple("abcde"), edges, color=False)) == [
        "✓ a──┬──▶✓ b──▶✓ c──┬──▶✓ d",
        "     │              │",
        "     ├──▶✓ e        │",
        "     │              │",
        "     └──────────────┘",
    ]


def test_fan_out_then_fan_in() -> None:
    edges = [("a", "b"), ("a", "c"), ("a", "d"), ("b", "f"), ("c", "f"), ("d", "f")]
    assert plain(render_dag(simple("abcdf"), edges, color=False)) == [
        "✓ a──┬──▶✓ b──┐",
        "     │        │",
        "     ├──▶✓ c──┼──▶✓ f",
        "     │        │",
        "     └──▶✓ d──┘",
    ]


def test_mapped_nodes_show_their_children() -> None:
    nodes = [
        Node("f", "fetch", "Mapped", (12, 1, 3)),
        Node("g", "g", "Mapped", (0, 0, 0)),
    ]
    lines = render_dag(nodes, [("f", "g")])
    assert lines[0].plain == "⧉ fetch[✓12 ✗1 ▶3]──▶⧉ g[0]"
    assert styled(lines[0])[0] == ("⧉ fetch[✓12 ✗1 ▶3]", "bold red")  # a child failed


def test_hostile_and_long_labels_are_plain_text_cut_to_fit() -> None:
    nodes = [
        Node("a", "[bold red]x\x1b[2J", "Running"),
        Node("b", "y" * 100, "Pending"),
    ]
    lines = render_dag(nodes, [("a", "b")])
    assert lines[0].plain == "▶ [bold red]x\ufffd[2J──▶… " + "y" * 39 + "…"
    assert styled(lines[0]) == [("▶ [bold red]x\ufffd[2J", "cyan"), ("… " + "y" * 39 + "…", "grey50")]  # fmt: skip


def test_bad_input_is_tolerated() -> None:
    nodes = [*simple("abc"), Node("a", "again", "Failed")]
    edges = [("a", "b"), ("a", "b"), ("b", "b"), ("b", "zz"), ("b", "c"), ("c", "a")]
    assert plain(render_dag(nodes, edges, color=False)) == ["✓ a──▶✓ b──▶✓ c"]
    assert render_dag([], []) == []
    assert plain(render_dag(simple("xy"), [], color=False)) == ["✓ x", "", "✓ y"]


def test_large_graphs_fall_back_to_the_indented_view() -> None:
    assert render_dag(NODES, EDGES, max_nodes=6) == render_indented(NODES, EDGES)


def test_the_indented_view_shows_each_node_once() -> None:
    assert plain(render_indented(NODES, EDGES, color=False)) == [
        "✓ extract_a",
        "└─ ✓ transform",
        "   ├─ ▶ load_db",
        "   │  └─ ⊘ report",
        "   └─ ✓ validate",
        "      └─ ↑ report",
        "✓ extract_b",
        "├─ ↑ transform",
        "└─ ✗ audit",
    ]


def test_the_indented_view_survives_a_cycle() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a")]
    assert plain(render_indented(simple("abc"), edges)) == [
        "✓ a",
        "└─ ✓ b",
        "   └─ ✓ c",
        "      └─ ↑ a",
    ]


def test_the_indented_view_marks_the_selection_only_in_colour() -> None:
    lines = render_indented(NODES, EDGES, selected="audit")
    assert styled(lines[-1]) == [("✗ audit", "bold red reverse")]
    assert all(not line.spans for line in render_indented(NODES, EDGES, color=False))


def test_neighbours_for_the_footer_line() -> None:
    assert neighbours(EDGES, "transform") == (["extract_a", "extract_b"], ["load_db", "validate"])  # fmt: skip
    assert neighbours(EDGES, "nobody") == ([], [])


def test_sixty_nodes_render() -> None:
    keys = [f"t{i:02d}" for i in range(60)]
    edges = [
        (keys[i], keys[j]) for i in range(60) for j in (i + 1, i * 7 % 60) if i < j < 60
    ]
    lines = render_dag([Node(k, k, "Success") for k in keys], edges, selected="t10")
    assert sum(line.plain.count("✓ t") for line in lines) == 60


def test_wide_and_combining_characters_keep_the_columns() -> None:
    nodes = [
        *simple("c"),
        Node("a", "cafe\u0301", "Success"),
        Node("b", "日本", "Success"),
    ]
    lines = plain(render_dag(nodes, [("a", "c"), ("b", "c")], color=False))
    assert lines == ["✓ cafe\u0301──┬──▶✓ c", "        │", "✓ 日本──┘"]
    assert [cell_len(line) for line in lines] == [15, 9, 9]
