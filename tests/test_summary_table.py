"""The table of scores run_boost.py and score.py print (and summary.md holds)."""

from __future__ import annotations

from bigroc.report import write_summary
from bigroc.summary_table import score_rows, score_table

METRICS = {"base/fid": 376.0583, "boosted/fid": 380.3406, "base/kid_mean": 0.1536, "boosted/kid_mean": 0.1481,
           "base/kid_std": 0.0638, "base/kid_ci_low": 0.0645, "base/kid_ci_high": 0.2307,
           "boosted/kid_ci_low": 0.0619, "boosted/kid_ci_high": 0.2241, "boosted/kid_change_ci_low": -0.0259,
           "boosted/kid_change_ci_high": 0.0101, "base/target_prob": 0.8763, "boosted/target_prob": 0.9435,
           "boosted/delta_l2": 0.4972, "eps": 0.5, "labels/histogram": [1, 2]}


def test_one_row_per_score_present_with_base_boosted_and_change():
    header, rows = score_rows(METRICS)
    assert header == ["score", "base", "boosted", "change"]
    assert rows == [["FID", "376.1", "380.3", "+4.282"],
                    ["KID x 10^3", "153.6 [64.5, 230.7]", "148.1 [61.9, 224.1]", "-5.5 [-25.9, +10.1]"],
                    ["p(target)", "0.8763", "0.9435", "+0.0672"],
                    ["delta L2", "-", "0.4972", "-"]]


def test_text_columns_line_up_and_markdown_is_a_table():
    lines = score_table(METRICS).splitlines()
    assert len(lines) == 5 and lines[0].split() == ["score", "base", "boosted", "change"]
    column = lines[0].index("boosted")
    assert all(line[column - 2:column] == "  " for line in lines)
    md = score_table(METRICS, markdown=True).splitlines()
    assert md[0] == "| score | base | boosted | change |" and md[1] == "|---|---:|---:|---:|"
    assert md[2] == "| FID | 376.1 | 380.3 | +4.282 |" and len(md) == 6


def test_seeds_show_their_spread_and_score_files_get_a_column_each():
    header, rows = score_rows({"base/fid": 10.0, "base/fid_std": 0.5, "boosted/fid": 9.0})
    assert rows == [["FID", "10 ± 0.5", "9", "-1"]]
    header, rows = score_rows({"a/fid": 12.0, "b/fid": 11.0, "b/is_mean": 3.2}, ["a", "b"])
    assert header == ["score", "a", "b"] and rows == [["FID", "12", "11"], ["IS", "-", "3.2"]]


def test_no_scores_leave_only_what_was_measured(tmp_path):
    header, rows = score_rows({"base/target_prob": 0.5, "boosted/target_prob": 0.75, "boosted/delta_l2": 1.0})
    assert [r[0] for r in rows] == ["p(target)", "delta L2"]
    path = write_summary(tmp_path, METRICS)
    assert path == tmp_path / "summary.md" and path.read_text() == score_table(METRICS, markdown=True)
