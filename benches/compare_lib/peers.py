"""compare_lib.peers: the allocators compare measures mapalloc against, where their libraries
are (Debian's packages; built from a crate's sources by compare_lib.built_peers), and which
versions they are."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

from compare_lib.built_peers import BUILT_PEERS, build_peers
from compare_lib.shell import apt_install, loud, say, sh

ROOT = Path(__file__).resolve().parent.parent.parent

# name -> (Debian package, soname preloaded)
DEBIAN_PEERS = {
    "jemalloc": ("libjemalloc2", "libjemalloc.so.2"),
    "mimalloc2": ("libmimalloc2.0", "libmimalloc.so.2"),
    "tcmalloc": ("libtcmalloc-minimal4", "libtcmalloc_minimal.so.4"),
    # LLVM's hardened allocator, the anchor of strict mode's cost target (issue 20).
    "scudo": ("libclang-rt-16-dev", "libclang_rt.scudo_standalone-x86_64.so"),
}
# Every peer compare can find or build (mimalloc3 and snmalloc: see built_peers).
PEERS = list(DEBIAN_PEERS) + list(BUILT_PEERS)
# Names still accepted on the command line: Debian's mimalloc was 'mimalloc' until the
# suite built mimalloc 3 too.
ALIASES = {"mimalloc": "mimalloc2"}


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
    """(name -> library, name -> version text, names not found): Debian's peers are
    installed when missing, the others built; each one missing is reported loudly."""
    found, described, missing = {}, {}, []
    for name in [n for n in names if n in DEBIAN_PEERS]:
        package, soname = DEBIAN_PEERS[name]
        path = find_peer(package, soname)
        if not path and apt_install([package]):
            path = find_peer(package, soname)
        if path:
            found[name] = os.path.realpath(path)
            code, out = sh(["dpkg-query", "-W", "-f=${Version}", package])
            version = out.strip() if code == 0 else "?"
            described[name] = f"{version} ({os.path.basename(found[name])})"
        else:
            missing.append(name)
            loud(f"{name}: {package} is not installed and could not be installed; skipped")
    built, built_described, not_built = build_peers([n for n in names if n in BUILT_PEERS])
    found.update(built)
    described.update({n: f"= {d}" for n, d in built_described.items()})
    return found, described, missing + not_built


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


def versions(allocs, libs, described, python):
    v = []
    if "glibc" in allocs:
        v.append(os.confstr("CS_GNU_LIBC_VERSION") or "glibc")
    for a in allocs:
        if a in described:
            v.append(f"{a} {described[a]}")
        elif a != "glibc":
            v.append(f"{a} ({libs[a]})")
    code, out = sh(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    if code == 0:
        v.append(f"mapalloc commit {out.strip()}")
    code, out = sh([python, "--version"])
    v.append(f"{out.strip()} ({python})")
    return v
