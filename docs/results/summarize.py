"""Mean +- std over seeds of the sweep tables in docs/results/ -> docs/results/summary.md."""
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
METRICS = ["accuracy", "spikes_per_sample", "synops_per_sample", "latency_steps"]



def table(csv: str, by: str) -> str:
    df = pd.read_csv(HERE / csv)
    cols = METRICS + [c for c in df.columns if c.startswith("robust_accuracy")]
    head = f"| {by} | runs | " + " | ".join(cols) + " |"
    sep = "|" + "---|" * (len(cols) + 2)
    lines = [head, sep]
    for key, g in df.groupby(by, sort=False):
        cells = [f"{g[c].mean():.3g} ± {g[c].std(ddof=0):.2g}" for c in cols]
        lines.append(f"| {key} | {len(g)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    text = ("## TTFS versus multi-spike (mnist5k)\n\n" + table("ttfs_vs_multispike.csv", "neuron") +
            "\n\n## Learnable delays versus none (delay task)\n\n" + table("delays_vs_none.csv", "delays") +
            "\n\n## Threshold adaptation without delays (delay task)\n\n" + table("adaptation_vs_none.csv", "tau_adapt") +
            "\n\n## Heterogeneous time constants without delays (delay task)\n\n" +
            table("heterogeneity_vs_none.csv", "tau_mem_cv") + "\n")
    (HERE / "summary.md").write_text(text)
    print(text)
