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


# ---------------------------------------------------------------- the latency of correctly classified samples
#: T of each section's runs (num_steps): evaluate() charges each misclassified sample T steps of latency
STEPS = {"## 1.": 20, "## 2.": 60, "## 3.": 60, "## 4.": 60}

#: prose numbers derived from the CSVs: (section, group, what, text printed in that section). ``what``: "correct" (mean
#: ± std over seeds of the correct-only latency), "charge" (mean of (1 - accuracy) * T), "range" (lowest and highest
#: correct-only latency of the group's runs, "a to b")
DERIVED = [
    ("## 1.", "ttfs", "charge", "1.75 of TTFS's 2.44 steps"),
    ("## 1.", "multi_spike", "charge", "1.57 of multi-spike's 2.29"),
    ("## 1.", "ttfs", "correct", "step 0.75 ± 0.01 (TTFS)"),
    ("## 1.", "multi_spike", "correct", "0.78 ± 0.10 (multi-spike)"),
    ("## 2.", False, "charge", "28.4 of the no-delay networks' 44.2 steps"),
    ("## 2.", False, "correct", "decided at step 30.0 ± 0.8"),
    ("## 2.", True, "correct", "delay networks at step 35.9 ± 2.1"),
]
#: (section, its CSV's group, text): a range of correct-only latencies quoted in another section (section 3 quotes 2's)
DERIVED_RANGES = [("## 3.", "## 2.", True, "32.9 to 37.8 on their correctly classified samples")]


def correct_only_latency(df: pd.DataFrame, steps: int) -> pd.Series:
    """Per run, the mean latency of the correctly classified samples: ``latency_steps`` less the ``steps`` charged to
    each misclassified sample, ``(latency - (1 - accuracy) * steps) / accuracy``."""
    return (df["latency_steps"] - (1 - df["accuracy"]) * steps) / df["accuracy"]


def section_text(heading: str) -> str:
    """The text of the page's section ``heading``, its line breaks and indents as single spaces."""
    text = PAGE.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return " ".join((text[start:] if end < 0 else text[start:end]).split())


def _numbers(printed: str) -> list[str]:
    return re.findall(r"\d+\.\d+", printed)


@pytest.mark.parametrize("heading, group, what, printed", DERIVED)
def test_correct_only_latencies_in_the_prose_follow_from_the_csv(heading, group, what, printed):
    assert printed in section_text(heading), printed
    csv, by, _ = TABLES[heading]
    df = pd.read_csv(RESULTS / csv)
    g, steps = df[df[by] == group], STEPS[heading]
    if what == "charge":
        expected = [((1 - g["accuracy"]) * steps).mean(), g["latency_steps"].mean()]
    else:
        lat = correct_only_latency(g, steps)
        expected = [lat.mean(), lat.std(ddof=0)]
    for number, value in zip(_numbers(printed), expected, strict=True):
        assert abs(float(number) - value) <= tolerance(number) + 1e-9, (printed, number, value)


@pytest.mark.parametrize("heading, source, group, printed", DERIVED_RANGES)
def test_quoted_ranges_of_correct_only_latencies_follow_from_the_csv(heading, source, group, printed):
    assert printed in section_text(heading), printed
    csv, by, _ = TABLES[source]
    df = pd.read_csv(RESULTS / csv)
    lat = correct_only_latency(df[df[by] == group], STEPS[source])
    for number, value in zip(_numbers(printed), [lat.min(), lat.max()], strict=True):
        assert abs(float(number) - value) <= tolerance(number) + 1e-9, (printed, number, value)


def test_the_page_says_misclassified_samples_count_t():
    text = section_text("## 1.")
    assert "every misclassified (or undecided) sample counts the full T steps" in text
    assert "(L − (1 − a) × T) / a" in text
    assert "~3.3–3.4 of the 20 steps" not in PAGE.read_text()  # the misreading of the column
    steps = [int(m) for m in re.findall(r"--num-steps (\d+)", PAGE.read_text())]
    assert steps[:2] == [STEPS["## 1."], STEPS["## 2."]]  # the T of the commands the page gives
