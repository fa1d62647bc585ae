"""compare_lib.shell: the runner's terminal messages and shell helpers (never raise for a
missing tool; apt-get as root or through sudo)."""

import os
import shutil
import subprocess
import sys


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def loud(msg):
    bar = "!" * 78
    say(f"{bar}\n!! {msg}\n{bar}")


def sh(cmd, **kw):
    """Runs a command, returning (exit code, stdout+stderr); never raises for a missing tool."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        return p.returncode, p.stdout
    except OSError as e:
        return 127, str(e)


def as_root(cmd):
    if os.geteuid() == 0:
        return cmd
    return ["sudo", "-n"] + cmd if shutil.which("sudo") else cmd


def apt_install(packages):
    """apt-get install, with an apt-get update first only if the plain install fails."""
    if not shutil.which("apt-get"):
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say(f"compare: installing {' '.join(packages)} (apt-get)")
    cmd = as_root(["apt-get", "install", "-y", "-q"] + packages)
    if sh(cmd, env=env)[0] == 0:
        return True
    sh(as_root(["apt-get", "update", "-q"]), env=env)
    code, out = sh(cmd, env=env)
    if code != 0:
        say(out[-2000:])
    return code == 0
