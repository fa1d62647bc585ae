"""compare_lib.run: spawning one run, measuring it (wall time, rusage through benches/measure.c)
and tracing it (strace -c)."""

import os
import re
import shlex
import shutil
import signal
import threading
import time
from pathlib import Path

from compare_lib.shell import apt_install, loud

SYSCALLS = ["mmap", "munmap", "mprotect", "madvise", "process_madvise", "mremap", "brk"]


def ensure_strace():
    if shutil.which("strace") or apt_install(["strace"]):
        return shutil.which("strace")
    loud("strace is not available: the syscall pass and the start-up syscall counts are skipped")
    return None



class Result:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def ok(self):
        return self.exit == 0 and self.checksum is not None


CHECKSUM = re.compile(r"^checksum ([0-9a-f]{16})$")


def spawn_and_wait(argv, env, out_path, err_path, timeout):
    """Runs argv with stdout/stderr to files; returns (seconds, status, rusage, timed_out)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(out_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(err_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    timed_out = threading.Event()
    reaped = threading.Lock()
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setpgroup=0)

    def kill():
        with reaped:  # never signal a pid that may have been reaped and reused
            timed_out.set()
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        # Wait without reaping, stop the timer, then reap with the rusage.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        seconds = time.perf_counter() - start
        with reaped:
            timer.cancel()
            _, status, usage = os.wait4(pid, 0)
    except BaseException:
        timer.cancel()
        try:
            os.killpg(pid, signal.SIGKILL)
            os.wait4(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    return seconds, status, usage, timed_out.is_set()


def exit_code(status, timed_out):
    if timed_out:
        return "timeout"
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def read_checksum(path):
    found = None
    for line in Path(path).read_text(errors="replace").splitlines():
        m = CHECKSUM.match(line.strip())
        if m:
            found = m.group(1)
    return found


def tail(path, n=600):
    text = Path(path).read_text(errors="replace").strip()
    return text[-n:]


def run_timed(w, alloc, lib, rep, argv, env, measure, tmp, timeout):
    """One timed run, launched through benches/measure.c (see there why)."""
    out, err, res = tmp / "stdout", tmp / "stderr", tmp / "measure.txt"
    if res.exists():
        res.unlink()
    load1 = os.getloadavg()[0]
    cmd = [measure, str(res), lib or ""] + argv
    _, status, _, timed_out = spawn_and_wait(cmd, env, out, err, timeout)
    fields = res.read_text().split() if res.exists() else []
    if timed_out or len(fields) < 5 or exit_code(status, False) != 0:
        seconds, rss, user, system = timeout if timed_out else 0.0, 0, 0.0, 0.0
        code = "timeout" if timed_out else f"measure:{exit_code(status, False)}"
    else:
        seconds, user, system = float(fields[0]), float(fields[2]), float(fields[3])
        rss, code = int(fields[1]), int(fields[4])
    r = Result(workload=w.name, allocator=alloc, rep=rep, seconds=seconds, peak_rss_kib=rss,
               exit=code, checksum=read_checksum(out), user_s=user, sys_s=system, load1=load1)
    if not r.ok:
        loud(
            f"FAILED: {w.name} under {alloc} (rep {rep}): exit {r.exit}, "
            f"checksum {r.checksum}\n   command: LD_PRELOAD={lib or ''} {shlex.join(argv)}\n"
            f"   stderr: {tail(err)}"
        )
    return r


def run_strace(strace, w, alloc, lib, argv, env, tmp, timeout):
    out, err, summary = tmp / "stdout", tmp / "stderr", tmp / "strace.txt"
    cmd = [strace, "-f", "-c", "-o", str(summary), "-e", "trace=" + ",".join(SYSCALLS)]
    if lib:
        cmd += ["-E", f"LD_PRELOAD={lib}"]  # for the traced program only, not for strace
    _, status, _, timed_out = spawn_and_wait(cmd + ["--"] + argv, env, out, err, timeout)
    counts = {s: 0 for s in SYSCALLS}
    if summary.exists():
        for line in summary.read_text().splitlines():
            tok = line.split()
            if len(tok) >= 5 and tok[-1] in counts and tok[3].isdigit():
                counts[tok[-1]] = int(tok[3])
    row = dict(workload=w.name, allocator=alloc, **counts)
    row["total"] = sum(counts.values())
    row["exit"] = exit_code(status, timed_out)
    row["checksum"] = read_checksum(out)
    if row["exit"] != 0:
        loud(f"FAILED under strace: {w.name} under {alloc}: exit {row['exit']}: {tail(err)}")
    return row


