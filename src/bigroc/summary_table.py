"""The scores of a run as a short table: one row per score present, one column per stage.

    score        base                 boosted              change
    FID          376.1                380.3                +4.282
    KID x 10^3   153.6 [64.5, 230.7]  148.1 [61.9, 224.1]  -5.5 [-25.9, +10.1]
    p(target)    0.8763               0.9435               +0.06722

Rows come from the keys of metrics.json (``<stage>/<quantity>``, :mod:`bigroc.keys`); a
value averaged over seeds shows its standard deviation (``<key>_std``) as ``± s``. KID (shown
x 10^3) and FID-inf come with their 95% bootstrap intervals where the metrics have them. With the stages
``base`` and ``boosted`` a ``change`` column (boosted - base) follows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bigroc import keys

# (row name, quantity of the key, scale of the shown value)
ROWS = (("FID", "fid", 1.0), ("FID-inf", "fid_inf", 1.0), ("sFID", "sfid", 1.0), ("KID x 10^3", "kid_mean", 1e3), ("precision", "precision", 1.0),
        ("recall", "recall", 1.0), ("IS", "is_mean", 1.0), ("p(target)", "target_prob", 1.0),
        ("delta L2", "delta_l2", 1.0))
MISSING = "-"
INTERVALS = {"kid_mean": "kid", "fid_inf": "fid_inf"}  # quantity -> the prefix of its 95% interval keys


def _number(value: float, sign: bool = False) -> str:
    return f"{value:+.4g}" if sign else f"{value:.4g}"


def _interval(metrics: Mapping[str, Any], prefix: str, scale: float, sign: bool) -> str:
    """`` [lo, hi]`` of ``<prefix>_ci_low/high`` (a 95% interval), or nothing."""
    lo, hi = metrics.get(f"{prefix}_ci_low"), metrics.get(f"{prefix}_ci_high")
    if not isinstance(lo, float) or not isinstance(hi, float):
        return ""
    return f" [{_number(scale * lo, sign)}, {_number(scale * hi, sign)}]"


def _cell(metrics: Mapping[str, Any], stage: str, quantity: str, scale: float) -> str:
    key = keys.score(stage, quantity)
    value = metrics.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return MISSING
    text = _number(scale * value)
    std = metrics.get(f"{key}_std")
    if isinstance(std, float):
        text += f" ± {_number(scale * std)}"
    if quantity in INTERVALS:
        text += _interval(metrics, keys.score(stage, INTERVALS[quantity]), scale, sign=False)
    return text


def _change(metrics: Mapping[str, Any], quantity: str, scale: float) -> str:
    base, boosted = (metrics.get(keys.score(s, quantity)) for s in (keys.BASE, keys.BOOSTED))
    if not isinstance(base, (int, float)) or not isinstance(boosted, (int, float)):
        return MISSING
    text = _number(scale * (boosted - base), sign=True)
    if quantity in INTERVALS:
        text += _interval(metrics, keys.score(keys.BOOSTED, INTERVALS[quantity] + "_change"), scale, sign=True)
    return text


def score_rows(metrics: Mapping[str, Any], stages: Sequence[str] = (keys.BASE, keys.BOOSTED)
               ) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the table: a row per score that any of ``stages`` has, a cell per
    stage (``-`` where absent), and ``change`` when ``stages`` are base and boosted."""
    change = tuple(stages) == (keys.BASE, keys.BOOSTED)
    header = ["score", *stages, *(["change"] if change else [])]
    rows = []
    for name, quantity, scale in ROWS:
        cells = [_cell(metrics, stage, quantity, scale) for stage in stages]
        if all(c == MISSING for c in cells):
            continue
        rows.append([name, *cells, *([_change(metrics, quantity, scale)] if change else [])])
    return header, rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with spaces, for a console or a log file."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in (header, *rows))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table in Markdown (numbers right-aligned)."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def score_table(metrics: Mapping[str, Any], stages: Sequence[str] = (keys.BASE, keys.BOOSTED), *,
                markdown: bool = False) -> str:
    """:func:`score_rows` as aligned text, or as Markdown (``markdown=True``)."""
    return (markdown_table if markdown else text_table)(*score_rows(metrics, stages))
