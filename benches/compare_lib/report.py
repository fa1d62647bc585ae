"""compare_lib.report: medians, ratio tables, latest.{csv,md} and the chart (latest.svg, drawn
by benches/chart.py)."""

import csv
import json
import math
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path

from compare_lib import startup
from compare_lib.peers import versions
from compare_lib.run import SYSCALLS
from compare_lib.shell import apt_install, loud, say, sh

CHART = Path(__file__).resolve().parent.parent / "chart.py"


def check_checksums(results, strace_rows):
    """Every successful run of a workload, timed or traced, must agree on the checksum."""
    problems = []
    by_workload = {}
    for r in results:
        if r.checksum is not None and r.exit == 0:
            by_workload.setdefault(r.workload, {}).setdefault(r.checksum, set()).add(r.allocator)
    for wl, sums in by_workload.items():
        if len(sums) > 1:
            detail = "; ".join(f"{c}: {', '.join(sorted(a))}" for c, a in sums.items())
            problems.append(f"CHECKSUM MISMATCH in {wl}: {detail}")
    # The traced pass runs at another scale: its checksums agree among themselves.
    traced = {}
    for row in strace_rows:
        if row["checksum"] is not None and row["exit"] == 0:
            traced.setdefault(row["workload"], {}).setdefault(row["checksum"], set()).add(
                row["allocator"]
            )
    for wl, sums in traced.items():
        if len(sums) > 1:
            detail = "; ".join(f"{c}: {', '.join(sorted(a))}" for c, a in sums.items())
            problems.append(f"CHECKSUM MISMATCH in {wl} (strace pass): {detail}")
    for p in problems:
        loud(p)
    return problems


def medians(results):
    """(workload, allocator) -> (median seconds, median peak RSS KiB, spread, median CPU
    seconds: user + sys) over good runs."""
    groups = {}
    for r in results:
        if r.ok:
            groups.setdefault((r.workload, r.allocator), []).append(r)
    out = {}
    for key, rs in groups.items():
        secs = [r.seconds for r in rs]
        med = statistics.median(secs)
        spread = (max(secs) - min(secs)) / med if len(secs) > 1 and med > 0 else None
        out[key] = (med, statistics.median(r.peak_rss_kib for r in rs), spread,
                    statistics.median(r.user_s + r.sys_s for r in rs))
    return out


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def ratio_table(workloads, allocs, base, med, index):
    """workload -> allocator -> ratio to the baseline (None when a side failed)."""
    table = {}
    for wl in workloads:
        row = {}
        b = med.get((wl, base))
        for a in allocs:
            m = med.get((wl, a))
            row[a] = m[index] / b[index] if m and b and b[index] > 0 else None
        table[wl] = row
    geo = {a: geomean([table[wl][a] for wl in workloads]) for a in allocs}
    return table, geo


def fmt(v, digits=2):
    return "FAIL" if v is None else f"{v:.{digits}f}"


def md_ratio(title, workloads, allocs, table, geo, note):
    lines = [f"## {title}", "", note, "", "| workload | " + " | ".join(allocs) + " |"]
    lines.append("|---|" + "---:|" * len(allocs))
    for wl in workloads + ["geomean"]:
        row = geo if wl == "geomean" else table[wl]
        vals = [row[a] for a in allocs]
        best = min((v for v in vals if v is not None), default=None)
        cells = [f"**{fmt(v)}**" if v is not None and v == best else fmt(v) for v in vals]
        name = "**geomean**" if wl == "geomean" else wl
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def machine_info():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel": f"Linux {platform.release()} ({platform.machine()})",
        "memory": f"{mem:.1f} GiB",
    }


def write_csvs(outdir, results, strace_rows):
    with open(outdir / "latest.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "allocator", "rep", "seconds", "peak_rss_kib", "exit",
                     "checksum", "user_s", "sys_s", "load1"])
        for r in results:
            wr.writerow([r.workload, r.allocator, r.rep, f"{r.seconds:.4f}", r.peak_rss_kib,
                         r.exit, r.checksum or "", f"{r.user_s:.3f}", f"{r.sys_s:.3f}",
                         f"{r.load1:.2f}"])
    if not strace_rows and (outdir / "latest-syscalls.csv").exists():
        (outdir / "latest-syscalls.csv").unlink()  # stale: from an earlier run
    if strace_rows:
        with open(outdir / "latest-syscalls.csv", "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["workload", "allocator"] + SYSCALLS + ["total", "exit", "checksum"])
            for row in strace_rows:
                wr.writerow([row[k] if row[k] is not None else "" for k in
                             ["workload", "allocator"] + SYSCALLS + ["total", "exit", "checksum"]])


def md_header(ctx, reps):
    info, loads = ctx.info, ctx.loads
    L = ["# mapalloc allocator comparison", ""]
    L.append(f"- date: {ctx.started:%Y-%m-%d %H:%M} UTC")
    L.append(f"- machine: {info['nproc']} cores (nproc), {info['cpu']}, {info['memory']} RAM, "
             f"{info['kernel']}")
    L.append("- software: " + "; ".join(versions(ctx.allocs, ctx.libs, ctx.described,
                                                  ctx.python)))
    L.append(f"- command: `{shlex.join([sys.argv[0]] + sys.argv[1:])}`")
    L.append(f"- runs: {reps} repetition(s) per workload and allocator, interleaved "
             f"({' '.join(ctx.allocs)} in turn, workload after workload, rep after rep); "
             f"medians of wall time and of peak RSS (wait4 ru_maxrss); SCALE {ctx.scale:g}; "
             f"N = {info['nproc']} threads in the -Nt rows")
    L.append(f"- load average (1 min) at start / end: {loads[0]:.2f} / {loads[1]:.2f}")
    if ctx.missing:
        L.append(f"- **not measured (library unavailable): {', '.join(ctx.missing)}**")
    cfg = {k: v for k, v in os.environ.items()
           if k.startswith(("MAPALLOC_", "MALLOC_", "MIMALLOC_", "JE_MALLOC", "TCMALLOC_"))}
    if cfg:
        L.append("- allocator environment: " + ", ".join(f"`{k}={v}`" for k, v in cfg.items()))
    return L + [""]


def md_behind(workloads, allocs, t_table, peer_names):
    """The rows where mapalloc is furthest behind the fastest peer (the Targets section's
    peers: mapalloc's own variants and NAME=path builds are not peers)."""
    behind = []
    for wl in workloads:
        mine = t_table[wl].get("mapalloc")
        peers = [(t_table[wl][a], a) for a in allocs if a in peer_names
                 and t_table[wl][a] is not None]
        if mine is not None and peers:
            best, who = min(peers)
            behind.append((mine / best, wl, who))
    behind.sort(reverse=True)
    L = ["## Where mapalloc is furthest behind the best peer (time)", "",
         "| workload | mapalloc / best | best |", "|---|---:|---|"]
    L += [f"| {wl} | {x:.2f} | {who} |" for x, wl, who in behind[:5]]
    return L + [""]


# Issue 17's targets for mapalloc against the peers of the run.
GEOMEAN_TIME_TARGET = 0.95  # geomean time over the best peer's
WORST_WORKLOAD_TARGET = 1.25  # time over the fastest peer, on every workload
RSS_TARGET = 1.10  # geomean peak RSS over glibc's


def verdict(value, limit):
    return "met" if value is not None and value <= limit else "**MISSED**"


def per_workload(med, workloads, a, b, index):
    """workload -> a's median / b's median, on the workloads both ran."""
    out = {}
    for wl in workloads:
        ma, mb = med.get((wl, a)), med.get((wl, b))
        if ma and mb and mb[index] > 0:
            out[wl] = ma[index] / mb[index]
    return out


def md_targets(workloads, peers, med, startup_rows, allocs):
    """Issue 17's targets: mapalloc's time against the best peer (geomean) and against the
    fastest peer of each workload, its peak RSS against glibc's, and (when the start-up pass
    ran) its start-up faults and syscalls."""
    L = ["## Targets (issue 17)", "",
         f"Peers: {', '.join(peers) or 'none'} (every allocator of the run but mapalloc's own "
         "builds: a name starting with mapalloc or a NAME=path library). A ratio is mapalloc's "
         "median over the peer's, on the workloads both ran.", ""]
    if not peers:
        return L + ["- no peer in the run: no target is measured", ""]
    geo = {p: geomean(list(per_workload(med, workloads, "mapalloc", p, 0).values()))
           for p in peers}
    geo = {p: g for p, g in geo.items() if g is not None}
    if geo:
        who = max(geo, key=geo.get)  # the peer with the lowest geomean is the hardest one
        L.append(f"- geomean time: mapalloc / best peer's geomean ({who}): {geo[who]:.2f}, "
                 f"target ≤ {GEOMEAN_TIME_TARGET:.2f}: "
                 f"{verdict(geo[who], GEOMEAN_TIME_TARGET)}")
    else:
        L.append("- geomean time: not measured (no workload ran under mapalloc and a peer): "
                 "**MISSED**")
    worst = []
    for wl in workloads:
        mine = med.get((wl, "mapalloc"))
        times = [(med[(wl, p)][0], p) for p in peers if (wl, p) in med]
        if mine and times:
            fastest, who = min(times)
            worst.append((mine[0] / fastest, wl, who))
    worst.sort(reverse=True)
    if worst:
        x, wl, who = worst[0]
        L.append(f"- worst single workload: mapalloc / fastest peer on it: {x:.2f} ({wl}, "
                 f"{who}), target ≤ {WORST_WORKLOAD_TARGET:.2f}: "
                 f"{verdict(x, WORST_WORKLOAD_TARGET)}")
        over = [f"{wl} {x:.2f} ({who})" for x, wl, who in worst if x > WORST_WORKLOAD_TARGET]
        if over:
            L.append(f"  - over {WORST_WORKLOAD_TARGET:.2f}: " + ", ".join(over))
    else:
        L.append("- worst single workload: not measured: **MISSED**")
    if "glibc" in peers:
        rss = geomean(list(per_workload(med, workloads, "mapalloc", "glibc", 1).values()))
        L.append(f"- peak RSS geomean vs glibc: {fmt(rss)}, target ≤ {RSS_TARGET:.2f}: "
                 f"{verdict(rss, RSS_TARGET)}")
    else:
        L.append("- peak RSS geomean vs glibc: not measured (glibc is not in the run)")
    if startup_rows:
        L += [f"- start-up {line[2:]}" for line in startup.target_lines(startup_rows, allocs)]
    return L + [""]


def md_absolute(workloads, allocs, med):
    L = ["## Absolute medians", "", "Wall time in seconds / peak RSS in MiB.", "",
         "| workload | " + " | ".join(allocs) + " |", "|---|" + "---:|" * len(allocs)]
    for wl in workloads:
        cells = []
        for a in allocs:
            m = med.get((wl, a))
            cells.append(f"{m[0]:.3f} s / {m[1] / 1024:.1f} MiB" if m else "FAIL")
        L.append(f"| {wl} | " + " | ".join(cells) + " |")
    L.append("")
    spreads = [(m[2], wl, a) for (wl, a), m in med.items() if m[2] is not None]
    if spreads:
        spreads.sort()
        mid = statistics.median(s for s, _, _ in spreads)
        worst = spreads[-1]
        L += ["## Noise", "",
              f"Spread of wall time across repetitions, (max - min) / median, per workload and "
              f"allocator: median {mid * 100:.1f}%, worst {worst[0] * 100:.1f}% "
              f"({worst[1]} under {worst[2]}). The per-run 1-minute load average is in "
              f"latest.csv (column load1).", ""]
    return L


def md_syscalls(workloads, allocs, strace_rows, strace_scale):
    L = ["## Syscalls", "",
         f"Untimed pass under `strace -f -c -e trace={','.join(SYSCALLS)}` at SCALE "
         f"{strace_scale:g}, one run per workload and allocator; the counts include the "
         "dynamic loader's own mappings (a few dozen). Total calls:", "",
         "| workload | " + " | ".join(allocs) + " |", "|---|" + "---:|" * len(allocs)]
    idx = {(r["workload"], r["allocator"]): r for r in strace_rows}
    for wl in workloads:
        cells = []
        for a in allocs:
            r = idx.get((wl, a))
            cells.append("FAIL" if not r or r["exit"] != 0 else str(r["total"]))
        L.append(f"| {wl} | " + " | ".join(cells) + " |")
    L += ["", "Sum over all workloads, per syscall:", "",
          "| syscall | " + " | ".join(allocs) + " |", "|---|" + "---:|" * len(allocs)]
    for s in SYSCALLS + ["total"]:
        L.append(f"| {s} | " + " | ".join(
            str(sum(r[s] for r in strace_rows if r["allocator"] == a)) for a in allocs) + " |")
    return L + [""]


def write_outputs(ctx, workloads, results, strace_rows, startup_rows, problems):
    """Writes latest.csv, latest-syscalls.csv, latest-startup.csv, latest.md and latest.svg
    into ctx.outdir; returns the geomeans of the time and peak-RSS ratios. ctx: the run's
    allocators (allocs, libs, described, missing, peers), info, started, loads, scale,
    strace_scale, startup_reps, python, chart."""
    outdir, allocs = ctx.outdir, ctx.allocs
    outdir.mkdir(parents=True, exist_ok=True)
    write_csvs(outdir, results, strace_rows)
    if startup_rows:
        startup.write_csv(outdir / "latest-startup.csv", startup_rows)
    elif (outdir / "latest-startup.csv").exists():
        (outdir / "latest-startup.csv").unlink()  # stale: from an earlier run

    base = "glibc" if "glibc" in allocs else allocs[0]
    med = medians(results)
    t_table, t_geo = ratio_table(workloads, allocs, base, med, 0)
    m_table, m_geo = ratio_table(workloads, allocs, base, med, 1)
    c_table, c_geo = ratio_table(workloads, allocs, base, med, 3)
    reps = max((r.rep for r in results), default=0)
    L = md_header(ctx, reps)
    L.append("Workloads are described in [benches/README.md](../benches/README.md). "
             "Ratios are to " + base + ": lower is better, **bold** is the best of the row.")
    L.append("")
    if problems:
        L += ["## FAILURES", ""] + [f"- {p}" for p in problems] + [""]
    if "mapalloc" in allocs:
        L += md_targets(workloads, ctx.peers, med, startup_rows, allocs)
    L += md_ratio(f"Time (ratio to {base})", workloads, allocs, t_table, t_geo,
                  "Median wall time of the run divided by the baseline's.")
    L += md_ratio(f"CPU time (ratio to {base})", workloads, allocs, c_table, c_geo,
                  "Median user + system CPU time divided by the baseline's: steadier than "
                  "wall time on a shared machine; it counts every thread's time.")
    L += md_ratio(f"Peak RSS (ratio to {base})", workloads, allocs, m_table, m_geo,
                  "Median peak resident set size divided by the baseline's.")
    if "mapalloc" in allocs:
        L += md_behind(workloads, allocs, t_table, ctx.peers)
    L += md_absolute(workloads, allocs, med)
    if strace_rows:
        L += md_syscalls(workloads, allocs, strace_rows, ctx.strace_scale)
    if startup_rows:
        L += startup.md_startup(startup_rows, allocs, ctx.startup_reps)
    (outdir / "latest.md").write_text("\n".join(L))

    info = ctx.info
    chart_data = {
        "title": f"mapalloc comparison, {ctx.started:%Y-%m-%d}, {info['nproc']} cores, "
                 f"{info['cpu']}, SCALE {ctx.scale:g}, {reps} rep(s)",
        "baseline": base,
        "allocators": allocs,
        "workloads": workloads + ["geomean"],
        "time": {wl: [t_table[wl][a] for a in allocs] for wl in workloads}
        | {"geomean": [t_geo[a] for a in allocs]},
        "rss": {wl: [m_table[wl][a] for a in allocs] for wl in workloads}
        | {"geomean": [m_geo[a] for a in allocs]},
    }
    if ctx.chart:
        draw_chart(chart_data, outdir / "latest.svg", outdir / "tmp" / "chart.json")
    elif (outdir / "latest.svg").exists():
        (outdir / "latest.svg").unlink()  # stale: from an earlier run
    return t_geo, m_geo


def chart_python():
    """An interpreter that can import matplotlib, installing it if none can."""
    probe = [sys.executable, "/usr/bin/python3"]
    for attempt in range(3):
        for py in dict.fromkeys(p for p in probe if p and os.path.exists(p)):
            if sh([py, "-c", "import matplotlib"])[0] == 0:
                return py
        if attempt == 0:
            apt_install(["python3-matplotlib"])
        elif attempt == 1:
            say("compare: pip install matplotlib")
            sh([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])
    return None


def draw_chart(data, svg, data_path):
    if svg.exists():
        svg.unlink()  # never leave a chart of an earlier run next to this run's tables
    py = chart_python()
    if not py:
        loud("matplotlib is not available: no chart drawn (latest.csv and latest.md are written)")
        return
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_text(json.dumps(data))
    code, out = sh([py, str(CHART), str(data_path), str(svg)])
    if code != 0:
        loud(f"the chart could not be drawn: {out[-1500:]}")

