"""compare_lib.startup: the start-up pass, for issue 17's process start-up target: "a
short-lived program (`sed`, `git log -1`) under the preload takes at most 10 more page faults
than under glibc, and no more syscalls than mimalloc".

Each program of PROGRAMS runs REPS times under every allocator, interleaved (rep 1: program
1 under A B C ..., program 2 under A B C ..., then rep 2), started by benches/measure.c like
a workload, which reports its wall time and its minor and major page faults (wait4's
ru_minflt, ru_majflt); the tables show medians. Then each runs once per allocator under
`strace -f -c` (every syscall) for the syscall total. Every run must exit 0 and print what
it printed under the first allocator, or it is a failure.
"""

import csv
import hashlib
import statistics
import subprocess
from pathlib import Path

from compare_lib.run import exit_code, spawn_and_wait, tail
from compare_lib.shell import loud, say

ROOT = Path(__file__).resolve().parent.parent.parent
REPS = 20
TIMEOUT = 60
FAULTS_TARGET = 10  # at most this many more minor faults under mapalloc than under glibc
# The syscall target's peers: mapalloc makes no more syscalls than each of them in the run.
SYSCALL_PEERS = ["mimalloc3", "mimalloc2"]

# name -> (what the table says, argv): short-lived real programs that allocate a little,
# and true, which shows what the preload alone costs.
PROGRAMS = {
    "sed": ("sed -n 1p README.md", ["sed", "-n", "1p", str(ROOT / "README.md")]),
    "git-log": ("git log -1 --format=%H", ["git", "-C", str(ROOT), "log", "-1", "--format=%H"]),
    "ls": ("ls /", ["ls", "/"]),
    "true": ("true", ["true"]),
}


def measure_once(measure, argv, lib, env, tmp):
    """(microseconds, minor faults, major faults, exit, digest of stdout); exit is not 0
    when the run failed."""
    out, err, res = tmp / "startup.out", tmp / "startup.err", tmp / "startup.txt"
    if res.exists():
        res.unlink()
    _, status, _, timed_out = spawn_and_wait([measure, str(res), lib or ""] + argv, env, out,
                                             err, TIMEOUT)
    fields = res.read_text().split() if res.exists() else []
    if timed_out or len(fields) < 7 or exit_code(status, False) != 0:
        code = "timeout" if timed_out else f"measure:{exit_code(status, False)}"
        return None, None, None, code, None, tail(err)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    return (float(fields[0]) * 1e6, int(fields[5]), int(fields[6]), int(fields[4]), digest,
            tail(err))


def syscall_total(strace, argv, lib, env, tmp):
    """Total syscalls of one run under `strace -f -c` (None if it failed)."""
    out, err, summary = tmp / "startup.out", tmp / "startup.err", tmp / "startup-strace.txt"
    if summary.exists():
        summary.unlink()
    cmd = [strace, "-f", "-c", "-o", str(summary)]
    if lib:
        cmd += ["-E", f"LD_PRELOAD={lib}"]  # for the traced program only, not for strace
    _, status, _, timed_out = spawn_and_wait(cmd + ["--"] + argv, env, out, err, TIMEOUT)
    if timed_out or exit_code(status, False) != 0 or not summary.exists():
        return None
    for line in summary.read_text().splitlines():
        tok = line.split()
        if len(tok) >= 5 and tok[-1] == "total" and tok[3].isdigit():
            return int(tok[3])
    return None


def runnable(env):
    """The programs that run here without a preload (git log needs the repository's .git,
    which a source archive lacks); each one left out is reported loudly."""
    ok = {}
    for prog, (label, argv) in PROGRAMS.items():
        try:
            p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
            code, err = p.returncode, p.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            code, err = "?", str(e)
        if code == 0:
            ok[prog] = (label, argv)
        else:
            loud(f"start-up pass: `{label}` does not run here without a preload (exit {code}: "
                 f"{err.strip()[-300:]}); left out")
    return ok


def startup_pass(allocs, libs, env_for, measure, strace, tmp, reps=REPS):
    """(rows, one per program and allocator; problems found). env_for(allocator) is the
    environment of its runs, without LD_PRELOAD."""
    programs = runnable(env_for("glibc"))
    say(f"compare: start-up pass ({len(programs)} programs x {len(allocs)} allocators x "
        f"{reps} runs, then one each under strace)")
    runs, problems, first = {}, [], {}
    for rep in range(1, reps + 1):
        for prog, (_, argv) in programs.items():
            for a in allocs:
                us, minflt, majflt, code, digest, err = measure_once(measure, argv, libs[a],
                                                                     env_for(a), tmp)
                runs.setdefault((prog, a), []).append((us, minflt, majflt, code))
                if code != 0:
                    if all(r[3] == 0 for r in runs[(prog, a)][:-1]):  # its first failure
                        loud(f"FAILED: {prog} under {a} (start-up run {rep}): exit {code}: "
                             f"{err}")
                    continue
                seen, by = first.setdefault(prog, (digest, a))
                mismatch = f"OUTPUT MISMATCH in {prog} (start-up pass): {a} printed other " \
                           f"output than {by}"
                if digest != seen and mismatch not in problems:
                    problems.append(mismatch)
                    loud(mismatch)
    rows = []
    for prog, (_, argv) in programs.items():
        for a in allocs:
            good = [r for r in runs[(prog, a)] if r[3] == 0]
            failed = [r[3] for r in runs[(prog, a)] if r[3] != 0]
            if failed:
                problems.append(f"{prog} under {a} (start-up pass): exit {failed[0]} in "
                                f"{len(failed)} of {reps} runs")
            calls = syscall_total(strace, argv, libs[a], env_for(a), tmp) if strace else None
            if strace and calls is None:
                problems.append(f"{prog} under {a} (start-up pass under strace): failed")
            med = [statistics.median(r[i] for r in good) if good else None for i in range(3)]
            rows.append(dict(program=prog, allocator=a, runs=len(good), us=med[0],
                             minflt=med[1], majflt=med[2], syscalls=calls,
                             command=" ".join(argv)))
            say(f"  {prog:8s} {a:10s} {num(med[1]):>6s} faults {num(calls):>6s} syscalls "
                f"{num(med[0]):>7s} us")
    return rows, problems


def num(v):
    return "FAIL" if v is None else f"{v:.0f}"


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        keys = ["program", "allocator", "runs", "minflt", "majflt", "us", "syscalls", "command"]
        wr.writerow(keys)
        for r in rows:
            wr.writerow(["" if r[k] is None else (f"{r[k]:g}" if isinstance(r[k], float)
                                                  else r[k]) for k in keys])


def worst_excess(rows, a, b, key):
    """(largest a - b over the programs, that program); the value is None when either side
    failed on one of them."""
    idx = {(r["program"], r["allocator"]): r for r in rows}
    worst = None
    for prog in dict.fromkeys(r["program"] for r in rows):
        ra, rb = idx.get((prog, a)), idx.get((prog, b))
        if not ra or not rb or ra[key] is None or rb[key] is None:
            return None, prog
        if worst is None or ra[key] - rb[key] > worst[0]:
            worst = (ra[key] - rb[key], prog)
    return worst or (None, "no program")


def signed(v):
    return "FAIL" if v is None else f"{v:+.0f}"


def target_lines(rows, allocs):
    """Issue 17's start-up target, one line per half, each met or MISSED."""
    L = []
    if "glibc" in allocs:
        d, prog = worst_excess(rows, "mapalloc", "glibc", "minflt")
        ok = d is not None and d <= FAULTS_TARGET
        L.append(f"- page faults: mapalloc − glibc ≤ {FAULTS_TARGET} on every program: worst "
                 f"{signed(d)} ({prog}): {'met' if ok else '**MISSED**'}")
    else:
        L.append("- page faults: not measured (glibc is not in the run)")
    peers = [a for a in SYSCALL_PEERS if a in allocs]
    if peers:
        parts, ok = [], True
        for peer in peers:
            d, prog = worst_excess(rows, "mapalloc", peer, "syscalls")
            ok = ok and d is not None and d <= 0
            parts.append(f"vs {peer} worst {signed(d)} ({prog})")
        L.append(f"- syscalls: mapalloc ≤ {' and '.join(peers)} on every program: "
                 f"{'; '.join(parts)}: {'met' if ok else '**MISSED**'}")
    else:
        L.append("- syscalls: not measured (neither mimalloc3 nor mimalloc2 is in the run)")
    return L


def md_startup(rows, allocs, reps):
    L = ["## Start-up", "",
         f"Short-lived programs, each run {reps} times per allocator (interleaved) through "
         "benches/measure.c, and once under `strace -f -c` (every syscall). A cell is median "
         "minor page faults (ru_minflt) / syscalls / median wall time in µs (fork to exit). "
         "Issue 17's start-up target is in the Targets section.", "",
         "| program | " + " | ".join(allocs) + " |", "|---|" + "---:|" * len(allocs)]
    idx = {(r["program"], r["allocator"]): r for r in rows}
    for prog in dict.fromkeys(r["program"] for r in rows):
        label, cells = PROGRAMS[prog][0], []
        for a in allocs:
            r = idx.get((prog, a))
            cells.append("FAIL" if not r or r["minflt"] is None else
                         f"{r['minflt']:.0f} / {num(r['syscalls'])} / {r['us']:.0f}")
        L.append(f"| `{label}` | " + " | ".join(cells) + " |")
    return L + [""]
