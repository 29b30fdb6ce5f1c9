"""docs/results.md states the numbers of the committed sweep tables (docs/results/*.csv), as rounded there.

The page is written by hand from ``docs/results/summary.md``; this test reads every cell ``mean ± std`` of its
tables and compares it with the mean and (population) standard deviation over seeds of the CSV it cites.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pandas as pd
import pytest

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
PAGE = RESULTS.parent / "results.md"

# section heading of the page -> (CSV, grouping column, the page's row name -> the CSV's group value)
TABLES = {
    "## 1.": ("ttfs_vs_multispike.csv", "neuron", {"TTFS": "ttfs", "multi-spike": "multi_spike"}),
    "## 2.": ("delays_vs_none.csv", "delays", {"learnable delays": True, "no delays": False}),
    "## 3.": ("adaptation_vs_none.csv", "tau_adapt", {"tau_adapt=20": 20.0, "tau_adapt=30": 30.0,
                                                      "tau_adapt=50": 50.0, "tau_adapt=1": 1.0}),
    "## 4.": ("heterogeneity_vs_none.csv", "tau_mem_cv", {"tau_mem_cv=0": 0.0, "tau_mem_cv=1": 1.0, "tau_mem_cv=2": 2.0,
                                                          "tau_mem_cv=3": 3.0}),
}


def _summarize():
    spec = importlib.util.spec_from_file_location("results_summarize", RESULTS / "summarize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_table(heading: str) -> list[list[str]]:
    """The rows (cells as text) of the first table after ``heading`` in docs/results.md, header first."""
    text = PAGE.read_text()
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return [rows[0]] + rows[2:]  # drop the |---| line


def tolerance(printed: str) -> float:
    """Half a unit of the last digit the page prints (``19 600`` -> 50, ``0.912`` -> 0.0005, ``79`` -> 0.5)."""
    if "." in printed:
        return 0.5 * 10.0 ** -len(printed.split(".")[1])
    zeros = len(printed) - len(printed.rstrip("0"))
    return 0.5 * 10.0 ** zeros if printed != "0" else 0.5


def parse_cell(cell: str) -> tuple[str, str]:
    """``"**1.000 ± 0.000**"``, ``"0.527 ± 0.031 (chance)"``, ``"19 600 ± 50"`` -> ``("1.000", "0.000")`` ..."""
    match = re.fullmatch(r"\**([\d ]+(?:\.\d+)?) ± ([\d ]+(?:\.\d+)?)\**(?: \(.*\))?", cell)
    assert match, f"not a 'mean ± std' cell: {cell!r}"
    return match.group(1).replace(" ", ""), match.group(2).replace(" ", "")


@pytest.mark.parametrize("heading", TABLES)
def test_results_page_states_the_committed_sweeps(heading):
    csv, by, groups = TABLES[heading]
    df = pd.read_csv(RESULTS / csv)
    columns = _summarize().METRICS + [c for c in df.columns if c.startswith("robust_accuracy")]
    header, *rows = page_table(heading)
    assert len(header) == len(columns) + 2, header  # name, runs, one column per metric
    assert len(rows) == len(groups)
    for row in rows:
        group = next(value for name, value in groups.items() if name in row[0])
        g = df[df[by] == group]
        assert int(row[1]) == len(g) > 0
        for column, cell in zip(columns, row[2:]):
            mean, std = parse_cell(cell)
            assert abs(float(mean) - g[column].mean()) <= tolerance(mean) + 1e-9, (row[0], column, cell)
            assert abs(float(std) - g[column].std(ddof=0)) <= tolerance(std) + 1e-9, (row[0], column, cell)


def test_the_check_catches_a_changed_number():
    assert parse_cell("19 600 ± 50") == ("19600", "50") and tolerance("19600") == 50
    assert parse_cell("**1.000 ± 0.000**") == ("1.000", "0.000") and tolerance("1.000") == 0.0005
    assert parse_cell("0.527 ± 0.031 (chance)") == ("0.527", "0.031") and tolerance("79") == 0.5
    assert abs(0.913 - 0.9117) > tolerance("0.913")  # a page saying 0.913 for a mean of 0.9117 fails
