"""Figure text: legends keep every character that tells series apart; history runs in
git order with the step's commit range marked."""
import pandas as pd

from parabench.report.figures.style import distinct_labels, wrapped


def test_labels_that_differ_only_at_the_end_stay_apart():
    params = ["family=paraformer-fused, depth=4, batch=1, mode=eager",
              "family=paraformer-fused, depth=4, batch=8, mode=eager"]
    names = distinct_labels(params)
    assert names == {params[0]: "batch=1", params[1]: "batch=8"}
    assert distinct_labels(params[:1]) == {params[0]: params[0]}


def test_wrapped_never_drops_text():
    long = "family=paraformer-fused, depth=4, batch=8, mode=eager"
    text = wrapped(long, 20)
    assert "".join(text.split()) == "".join(long.split()) and "…" not in text
    assert all(len(line) <= 20 for line in text.splitlines())


def test_history_figure_follows_order_not_date(tmp_path, monkeypatch):
    from parabench.regress.history import detect_change_points
    from parabench.report.figures import history as fig

    # every commit shares one date (a rebase); only `order` knows the sequence
    rows = [dict(benchmark="b", params=f"batch={b}", commit=f"c{i}",
                 date=pd.Timestamp("2024-01-01", tz="UTC"),
                 value=(1.0 if i < 5 else 1.5) * b, unit="seconds", order=i)
            for b in (1, 8) for i in reversed(range(10))]
    hist = pd.DataFrame(rows)
    changes = detect_change_points(hist)
    assert set(changes["commit"]) == {"c5"} and set(changes["previous_commit"]) == {"c4"}
    seen = {}
    real_subplots = fig.mpl_modules()[1].subplots

    def spy(*a, **k):
        f, axes = real_subplots(*a, **k)
        seen["axes"] = axes
        return f, axes

    monkeypatch.setattr(fig.mpl_modules()[1], "subplots", spy)
    assert fig.history_figure(hist, changes, tmp_path / "h.png").exists()
    ax = seen["axes"][0][0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [f"c{i}" for i in range(10)]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["batch=1", "batch=8"]
    line = ax.get_lines()[0]
    assert list(line.get_ydata()) == [1.0] * 5 + [1.5] * 5 or \
        list(line.get_ydata()) == [8.0] * 5 + [12.0] * 5
