"""The one Pareto helper the study report and `posebench tune` share."""

from __future__ import annotations

from posebench.pareto import pareto
from posebench.tune import pareto_front


def test_pareto_keeps_what_nothing_beats_on_both_axes():
    items = [("slow-best", 30.0, 0.95), ("fast-good", 10.0, 0.90), ("dominated", 20.0, 0.85),
             ("tie-later", 10.0, 0.90), ("unscored", 1.0, None), ("fastest-worst", 5.0, 0.50)]
    front = pareto(items, lambda i: i[1], lambda i: i[2])
    assert [i[0] for i in front] == ["fastest-worst", "fast-good", "slow-best"]


def test_tune_marks_its_rows_by_their_worst_accuracy():
    rows = [{"p50_ms": 10.0, "accuracy": {"fidelity": 0.97, "map50_95": 0.50}},
            {"p50_ms": 12.0, "accuracy": {"fidelity": 0.99, "map50_95": 0.60}},
            {"p50_ms": 11.0, "accuracy": {"fidelity": 0.99, "map50_95": 0.45}}]  # its worst (0.45) loses to row 0
    pareto_front(rows)
    assert [r["pareto"] for r in rows] == [True, True, False]


def test_a_costlier_item_joins_the_front_only_when_resolvably_better():
    """With a paired test, a slower item whose higher accuracy the images cannot tell from the front's last item
    stays off the front; one resolvably better joins; where the test cannot tell, the values decide."""
    items = [("fast", 5.0, 0.48), ("noise", 8.0, 0.485), ("real", 12.0, 0.50), ("unpaired", 20.0, 0.51)]
    resolved = {("real", "fast"): True, ("noise", "fast"): False}
    front = pareto(items, lambda i: i[1], lambda i: i[2], lambda a, b: resolved.get((a[0], b[0])))
    assert [i[0] for i in front] == ["fast", "real", "unpaired"]
    assert [i[0] for i in pareto(items, lambda i: i[1], lambda i: i[2])] == ["fast", "noise", "real", "unpaired"]
