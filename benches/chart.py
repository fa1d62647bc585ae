"""chart.py: draws bench-results/latest.svg for benches/compare.

    python3 benches/chart.py DATA.json OUT.svg

DATA.json is written by compare: allocators, workloads (the last one is the geomean row),
and per workload a list of time and peak-RSS ratios to the baseline (null for a failed run).
Two panels of grouped horizontal bars on a log scale, each bar drawn from 1 (the baseline)
to its ratio: bars to the left are better than the baseline, bars to the right worse.
Needs matplotlib; compare runs this with an interpreter that has it (installing
python3-matplotlib if needed).
"""

import json
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#ff7f0e", "#8c564b", "#e377c2",
          "#17becf", "#bcbd22", "#7f7f7f"]


def panel(ax, data, key, title):
    """The baseline (always 1) gets no bar of its own: it is the vertical line."""
    allocs, workloads = data["allocators"], data["workloads"]
    shown = [i for i, a in enumerate(allocs) if a != data["baseline"]]
    n = len(shown)
    height = 0.8 / max(n, 1)
    for slot, i in enumerate(shown):
        a = allocs[i]
        ys, xs, failed = [], [], []
        for row, wl in enumerate(workloads):
            y = row + (slot - (n - 1) / 2) * height
            v = data[key][wl][i]
            if v is None:
                failed.append(y)
            else:
                ys.append(y)
                xs.append(v)
        color = COLORS[slot % len(COLORS)]
        ax.barh(ys, [x - 1.0 for x in xs], height=height, color=color, label=a, left=1.0)
        for y in failed:
            ax.text(1.0, y, " FAIL", color=color, va="center", fontsize=6)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    values = [v for wl in workloads for v in data[key][wl] if v]
    lo, hi = min(values + [1.0]), max(values + [1.0])
    ticks = [t for t in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 0.75, 1, 1.5, 2, 4, 8, 16, 32)
             if lo / 1.5 <= t <= hi * 1.5]
    ax.set_xlim(lo / 1.15, hi * 1.15)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:.3g}" for t in ticks])
    ax.set_title(title, fontsize=10)
    ax.set_yticks(range(len(workloads)))
    ax.set_yticklabels(workloads, fontsize=8)
    ax.set_ylim(len(workloads) - 0.5, -0.5)
    ax.axhline(len(workloads) - 1.5, color="black", linewidth=0.5, linestyle=":")
    ax.grid(axis="x", which="major", linewidth=0.3, alpha=0.6)
    ax.tick_params(axis="x", labelsize=8)


def main():
    data_path, out = sys.argv[1], sys.argv[2]
    with open(data_path) as f:
        data = json.load(f)
    rows = len(data["workloads"])
    height = 1.4 + 0.42 * rows
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, height), sharey=True)
    base = data["baseline"]
    panel(left, data, "time", f"wall time / {base} (left of 1 = faster)")
    panel(right, data, "rss", f"peak RSS / {base} (left of 1 = smaller)")
    handles, labels = left.get_legend_handles_labels()
    fig.suptitle(data["title"], fontsize=10)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, 1.0 - 0.35 / height))
    fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.6 / height))
    fig.savefig(out, format="svg")


main()
