"""compare_lib.peers: the allocators compare measures mapalloc against, where their libraries
are, and which versions they are."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

from compare_lib.shell import apt_install, loud, say, sh

ROOT = Path(__file__).resolve().parent.parent.parent

# name -> (Debian package, soname preloaded)
PEERS = {
    "jemalloc": ("libjemalloc2", "libjemalloc.so.2"),
    "mimalloc": ("libmimalloc2.0", "libmimalloc.so.2"),
    "tcmalloc": ("libtcmalloc-minimal4", "libtcmalloc_minimal.so.4"),
    # LLVM's hardened allocator, the anchor of strict mode's cost target (issue 20).
    "scudo": ("libclang-rt-16-dev", "libclang_rt.scudo_standalone-x86_64.so"),
}


def find_peer(package, soname):
    """The peer's library: from the package's file list, then the linker cache, then the
    usual library directories."""
    code, out = sh(["dpkg", "-L", package])
    if code == 0:
        for line in out.splitlines():
            if line.endswith("/" + soname) and os.path.exists(line):
                return line
    code, out = sh(["ldconfig", "-p"])
    if code == 0:
        for line in out.splitlines():
            if line.strip().startswith(soname + " ") and "=>" in line:
                path = line.split("=>")[-1].strip()
                if os.path.exists(path):
                    return path
    dirs = ["/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/*-linux-gnu"]
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, soname))):
            return path
    return None


def locate_peers(names):
    found, missing = {}, []
    for name in names:
        package, soname = PEERS[name]
        path = find_peer(package, soname)
        if not path and apt_install([package]):
            path = find_peer(package, soname)
        if path:
            found[name] = os.path.realpath(path)
        else:
            missing.append(name)
            loud(f"{name}: {package} is not installed and could not be installed; skipped")
    return found, missing


def build_mapalloc():
    say("compare: cargo build --release -p mapalloc-cdylib")
    p = subprocess.run(["cargo", "build", "--release", "-p", "mapalloc-cdylib"], cwd=ROOT)
    if p.returncode != 0:
        sys.exit("compare: building libmapalloc.so failed")
    code, out = sh(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT)
    target = Path(json.loads(out)["target_directory"]) if code == 0 else ROOT / "target"
    lib = target / "release" / "libmapalloc.so"
    if not lib.exists():
        sys.exit(f"compare: {lib} not found after the build")
    return str(lib)


def versions(allocs, libs, python):
    v = []
    if "glibc" in allocs:
        v.append(os.confstr("CS_GNU_LIBC_VERSION") or "glibc")
    for a in allocs:
        if a in PEERS and a in libs:
            code, out = sh(["dpkg-query", "-W", "-f=${Version}", PEERS[a][0]])
            v.append(f"{a} {out.strip() if code == 0 else '?'} ({os.path.basename(libs[a])})")
        elif a not in PEERS and a != "glibc":
            v.append(f"{a} ({libs[a]})")
    code, out = sh(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    if code == 0:
        v.append(f"mapalloc commit {out.strip()}")
    code, out = sh([python, "--version"])
    v.append(f"{out.strip()} ({python})")
    return v

