"""chart.py: draws bench-results/latest.svg for benches/compare.

    python3 benches/chart.py DATA.json OUT.svg

DATA.json is written by compare: allocators, workloads (the last one is the geomean row),
and per workload a list of time and peak-RSS ratios to the baseline (null for a failed run).
Two panels of grouped horizontal bars on a log scale, the baseline at 1. Needs matplotlib;
compare runs this with an interpreter that has it (installing python3-matplotlib if needed).
"""

import json
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

COLORS = ["#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#ff7f0e", "#8c564b"]


def panel(ax, data, key, title):
    allocs, workloads = data["allocators"], data["workloads"]
    n = len(allocs)
    height = 0.8 / n
    for i, a in enumerate(allocs):
        ys, xs, failed = [], [], []
        for row, wl in enumerate(workloads):
            y = row + (i - (n - 1) / 2) * height
            v = data[key][wl][i]
            if v is None:
                failed.append(y)
            else:
                ys.append(y)
                xs.append(v)
        color = COLORS[i % len(COLORS)]
        ax.barh(ys, xs, height=height, color=color, label=a, left=0)
        for y in failed:
            ax.text(1.0, y, " FAIL", color=color, va="center", fontsize=6)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_yticks(range(len(workloads)))
    ax.set_yticklabels(workloads, fontsize=8)
    ax.set_ylim(len(workloads) - 0.5, -0.5)
    ax.axhline(len(workloads) - 1.5, color="black", linewidth=0.5, linestyle=":")
    ax.grid(axis="x", which="both", linewidth=0.3, alpha=0.6)
    ax.tick_params(axis="x", labelsize=8)


def main():
    data_path, out = sys.argv[1], sys.argv[2]
    with open(data_path) as f:
        data = json.load(f)
    rows = len(data["workloads"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 1.2 + 0.42 * rows), sharey=True)
    base = data["baseline"]
    panel(left, data, "time", f"wall time / {base} (lower is better)")
    panel(right, data, "rss", f"peak RSS / {base} (lower is better)")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9,
               bbox_to_anchor=(0.5, 1.0 - 0.25 / (1.2 + 0.42 * rows)))
    fig.suptitle(data["title"], fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.7 / (1.2 + 0.42 * rows)))
    fig.savefig(out, format="svg")


main()
