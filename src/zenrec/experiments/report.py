"""One self-contained HTML report of a leaderboard (``zenrec compare … --report report.html``).

The file holds everything it shows: the tables, and the plots drawn by
matplotlib (Agg, no display) inlined as base64 PNG — no script, no style
sheet, no font or image fetched from anywhere, so it opens offline and can be
mailed or archived as one file.  The plots: every accuracy metric per model,
catalogue coverage and popularity bias (mean popularity of the recommended
items) per model, accuracy against popularity bias, the learning curves of
the neural models (their per-epoch loss and validation NDCG, kept in
:attr:`LeaderboardRow.history <zenrec.experiments.leaderboard.LeaderboardRow.history>`)
and, after tuning, each model's best validation value by trial.

>>> write_report(board, "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zenrec.errors import ConfigError
from zenrec.experiments.leaderboard import Leaderboard

__all__ = ["report_html", "write_report"]

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: 700; color: #1f6f1a; }
.note { color: #666; font-size: .9em; } .warn { color: #8a1c1c; font-weight: 600; }
figure { display: inline-block; margin: .5em 1em .5em 0; } img { max-width: 100%; height: auto; }
"""


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("an HTML report needs matplotlib: pip install 'zenrec[report]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    """A figure as an inline ``<img>`` (base64 PNG), closed afterwards."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _figure(img: str, caption: str) -> str:
    return f"<figure>{img}<figcaption class=\"note\">{html.escape(caption)}</figcaption></figure>"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _bars(board: Leaderboard, keys: list[str], part: str, title: str, lower: bool = False) -> str:
    """Grouped horizontal bars: one group per model, one bar per metric key."""
    plt = _plt()
    labels = board.labels
    n, m = len(labels), len(keys)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 + 0.28 * n * m + 0.4))
    height = 0.8 / m
    for j, key in enumerate(keys):
        vals = [board.rows[i].value(key, part) for i in range(n)]  # type: ignore[arg-type]
        ys = [i + j * height for i in range(n)]
        ax.barh(ys, [v if _finite(v) else 0.0 for v in vals], height=height, label=key)
        for y, v in zip(ys, vals, strict=True):
            if _finite(v):
                ax.text(v, y, f" {v:.4g}", va="center", fontsize=8)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(n)], labels)
    ax.invert_yaxis()
    ax.set_title(title + (" (lower is better)" if lower else ""))
    if m > 1:
        ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15)
    return _png(fig)


def _scatter(board: Leaderboard, x_key: str, y_key: str, part: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for row in board.rows:
        x, y = row.value(x_key, part), row.value(y_key, part)  # type: ignore[arg-type]
        if _finite(x) and _finite(y):
            ax.scatter([x], [y])
            ax.annotate(row.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{x_key} (popularity bias: lower recommends less popular items)")
    ax.set_ylabel(y_key)
    ax.set_title("accuracy against popularity bias")
    return _png(fig)


def _curves(board: Leaderboard) -> str:
    plt = _plt()
    rows = [r for r in board.rows if r.history]
    valid = any("valid" in h for r in rows for h in r.history)
    fig, axes = plt.subplots(1, 2 if valid else 1, figsize=(11 if valid else 6, 3.8), squeeze=False)
    for r in rows:
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(r.history)]
        axes[0][0].plot(epochs, [h.get("loss", math.nan) for h in r.history], marker="o", ms=3, label=r.label)
        if valid:
            axes[0][1].plot(epochs, [h.get("valid", math.nan) for h in r.history], marker="o", ms=3, label=r.label)
    axes[0][0].set(title="training loss per epoch", xlabel="epoch", ylabel="loss")
    axes[0][0].legend(fontsize=8)
    if valid:
        axes[0][1].set(title="validation NDCG@10 per epoch (early stopping)", xlabel="epoch", ylabel="ndcg@10")
    return _png(fig)


def _tuning_plot(tuning: Mapping[str, Any]) -> str | None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    drawn = False
    metric = ""
    for label, r in tuning.items():
        trials = getattr(r, "trials", None)
        if trials is None or len(trials) == 0 or "value" not in trials:
            continue
        metric = getattr(r, "metric", metric)
        best, xs, ys = -math.inf, [], []
        for i, v in enumerate(trials["value"].tolist()):
            if _finite(v):
                best = max(best, v)
            if math.isfinite(best):
                xs.append(i)
                ys.append(best)
        ax.plot(xs, ys, drawstyle="steps-post", label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(title=f"best validation {metric} so far, by trial", xlabel="trial", ylabel=metric)
    ax.legend(fontsize=8)
    return _png(fig)


def _table(board: Leaderboard, keys: list[str], part: str) -> str:
    best: dict[str, float] = {}
    for key in keys:
        vals = [v for v in (r.value(key, part) for r in board.rows) if _finite(v)]  # type: ignore[arg-type]
        if vals:
            lower = key.split("@")[0] in ("avg_pop", "fit_seconds", "eval_seconds")
            best[key] = min(vals) if lower else max(vals)
    info = board.significance.get(part, {})
    p_key = board.headline if board.headline in keys and info.get("metric") == board.headline else None
    head = ["model"]
    for key in keys:
        head.append(key)
        if key == p_key:
            head.append("p")
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in board.rows:
        cells = [f"<td>{html.escape(row.label)}</td>"]
        for key in keys:
            v = row.value(key, part)  # type: ignore[arg-type]
            text = "–" if not _finite(v) else (f"{v:.2f}" if key.endswith("_seconds") or key.startswith("avg_pop")
                                               else f"{v:.4f}")
            cls = ' class="best"' if key in best and v == best[key] else ""
            cells.append(f"<td{cls}>{text}</td>")
            if key == p_key:
                p = row.p_value(key, part)  # type: ignore[arg-type]
                ptext = "ref" if row.label == info.get("reference") else (
                    "–" if not _finite(p) else ("&lt;.001" if p < 0.001 else f"{p:.3f}"))
                cells.append(f"<td>{ptext}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if p_key is not None:
        out.append(f'<p class="note">p: per-user {html.escape(p_key)} against {html.escape(str(info.get("reference")))}'
                   " (the best row), paired Wilcoxon signed-rank test.</p>")
    return "\n".join(out)


def _tuning_table(tuning: Mapping[str, Any]) -> str:
    rows = ["<table><tr><th>model</th><th>metric</th><th>defaults</th><th>tuned</th><th>trials</th>"
            "<th>parameters</th></tr>"]
    for label, r in tuning.items():
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in r.best_params.items() if k != "on_unknown_user")
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{html.escape(r.metric)}</td>"
                    f"<td>{r.default_value:.4f}</td><td>{r.best_value:.4f}</td><td>{r.n_trials}</td>"
                    f"<td style=\"text-align:left\">{html.escape(params)}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def report_html(board: Leaderboard, title: str = "zenrec leaderboard", tuning: Mapping[str, Any] | None = None) -> str:
    """The report as one HTML document (see the module docstring); ``tuning``: :func:`~zenrec.experiments.tune.tune`'s
    results, shown as a table and a plot."""
    if not isinstance(board, Leaderboard) or not board.rows:
        raise ConfigError("a report needs a leaderboard with at least one row")
    _plt()  # a clear error before anything is drawn
    ks = board.ks
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if board.sampled:
        parts.append(f'<p class="warn">{html.escape(board.title("test"))}</p>')
    if tuning:
        parts += ["<h2>Tuning (validation)</h2>", _tuning_table(tuning)]
    for part in ("test", "valid"):
        keys = board.metric_keys(part)  # type: ignore[arg-type]
        if not keys:
            continue
        parts += [f"<h2>{'Test' if part == 'test' else 'Validation'}</h2>",
                  f'<p class="note">{html.escape(board.title(part))}</p>',  # type: ignore[arg-type]
                  _table(board, keys + ["fit_seconds", "eval_seconds"], part)]
    present = set(board.metric_keys("test"))
    figures = []
    for k in ks:
        acc = [f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "hit", "precision", "map") if f"{m}@{k}" in present]
        if acc:
            figures.append(_figure(_bars(board, acc, "test", f"accuracy per model, k={k} (test)"),
                                   "higher is better"))
    cov = [f"coverage@{k}" for k in ks if f"coverage@{k}" in present]
    if cov:
        figures.append(_figure(_bars(board, cov, "test", "catalogue coverage (test)"),
                               "share of the catalogue recommended to at least one user"))
    pop = [f"avg_pop@{k}" for k in ks if f"avg_pop@{k}" in present]
    if pop:
        figures.append(_figure(_bars(board, pop, "test", "popularity bias (test)", lower=True),
                               "mean popularity of the recommended items"))
        head = board.headline if board.headline in present else None
        if head is not None:
            figures.append(_figure(_scatter(board, pop[-1], head, "test"),
                                   "up and to the left: accurate without leaning on popular items"))
    parts += ["<h2>Plots</h2>", "\n".join(figures)]
    if any(r.history for r in board.rows):
        parts += ["<h2>Learning curves</h2>", _figure(_curves(board), "neural models, per epoch of their final fit")]
    if tuning:
        plot = _tuning_plot(tuning)
        if plot is not None:
            parts += ["<h2>Tuning progress</h2>", _figure(plot, "each model's best validation value so far")]
    parts.append('<h2>Parameters</h2><table><tr><th>model</th><th>parameters</th></tr>')
    for row in board.rows:
        params = ", ".join(f"{k}={v}" for k, v in row.params.items())
        parts.append(f"<tr><td>{html.escape(row.label)}</td><td style=\"text-align:left\">{html.escape(params)}</td></tr>")
    parts += ["</table>", "</body></html>", ""]
    return "\n".join(parts)


def write_report(board: Leaderboard, path: str | Path, title: str = "zenrec leaderboard",
                 tuning: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`report_html` to ``path`` atomically; returns the path."""
    text = report_html(board, title, tuning)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def check_report(path: str | Path) -> None:
    """Fail now (before any fitting) when a report could not be written: matplotlib missing, or ``path`` a folder."""
    _plt()
    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a folder; give the report's file name, e.g. report.html")
