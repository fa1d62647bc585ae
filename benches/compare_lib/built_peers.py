"""compare_lib.built_peers: peers that compare builds itself, with cmake, from the C/C++
sources that a crate of Cargo.lock ships (Debian has no package of them).

- mimalloc3: `libmimalloc-sys` ships mimalloc v2 and v3 in `c_src/mimalloc/`; v3's
  `libmimalloc.so` is built with MI_OVERRIDE (it exports malloc, free, ...).
- snmalloc: `snmalloc-sys` ships snmalloc in `upstream/`; its preload shim is the
  `snmallocshim` target, `libsnmallocshim.so`.

The crate's source directory is found through `cargo metadata` (after a `cargo fetch` if it
is not unpacked yet), so the version built is the one Cargo.lock pins. Each build goes out
of tree into TARGET_DIR/peers/CRATE-VERSION/ and is redone only when its library is missing
or its stamp (source directory, cmake options, target) differs. A built library is then
checked to replace malloc: `nm -D` must show malloc and free defined, and in a Python started
under the preload, dladdr on the malloc that the dynamic linker resolves must name the library.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compare_lib.shell import apt_install, loud, say, sh

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD_TYPE = "Release"
# Tools of the build -> the Debian package that brings each.
TOOLS = {"cmake": "cmake", "make": "make", "cc": "gcc", "c++": "g++"}


class BuildError(Exception):
    pass


_metadata = {}


def cargo_metadata():
    """`cargo metadata` of the workspace (with dependencies), read once per run."""
    if not _metadata:
        code, out = sh(["cargo", "metadata", "--format-version", "1"], cwd=ROOT)
        if code != 0:
            raise BuildError(f"cargo metadata failed: {out[-800:]}")
        _metadata.update(json.loads(out))
    return _metadata


def crate_dir(crate):
    """(source directory, version) of the crate as Cargo.lock pins it, fetched if needed."""
    for attempt in range(2):
        packages = [p for p in cargo_metadata()["packages"] if p["name"] == crate]
        if not packages:
            raise BuildError(f"{crate} is not a dependency in Cargo.lock")
        pkg = max(packages, key=lambda p: [int(n) for n in re.findall(r"\d+", p["version"])])
        path = Path(pkg["manifest_path"]).parent
        if path.is_dir():
            return path, pkg["version"]
        if attempt == 0:
            say(f"compare: cargo fetch ({crate} {pkg['version']} is not unpacked)")
            code, out = sh(["cargo", "fetch"], cwd=ROOT)
            if code != 0:
                raise BuildError(f"cargo fetch failed: {out[-800:]}")
    raise BuildError(f"{path} is missing after cargo fetch")


def mimalloc_version(src, crate_root):
    """'3.3.2' from MI_MALLOC_VERSION (major, then two digits each of minor and patch)."""
    text = (src / "include" / "mimalloc.h").read_text(errors="replace")
    m = re.search(r"#define\s+MI_MALLOC_VERSION\s+(\d+)", text)
    if not m:
        raise BuildError(f"no MI_MALLOC_VERSION in {src / 'include' / 'mimalloc.h'}")
    v = int(m.group(1))
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def snmalloc_version(src, crate_root):
    """The version the sources declare (none did as of snmalloc-sys 0.7.6), else the snmalloc
    commit the crate was packaged from (.cargo_vcs_info.json; snmalloc-rs lives in the
    snmalloc repository)."""
    cmake = (src / "CMakeLists.txt").read_text(errors="replace")
    m = re.search(r"project\s*\(\s*snmalloc\b[^)]*\bVERSION\s+([0-9][0-9.]*)", cmake)
    if m:
        return m.group(1)
    try:
        sha = json.loads((crate_root / ".cargo_vcs_info.json").read_text())["git"]["sha1"]
        return f"git {sha[:12]} (the sources declare no version)"
    except (OSError, KeyError, ValueError):
        return "? (the sources declare no version)"


# mimalloc's CMakeLists.txt includes two files of its cmake/ folder that libmimalloc-sys
# does not ship (it builds with the cc crate, not cmake): the version, which is written
# from mimalloc.h, and join_paths, a helper for its pkg-config file.
JOIN_PATHS = """function(join_paths joined_path first_path_segment)
  set(temp_path "${first_path_segment}")
  foreach(current_segment IN LISTS ARGN)
    if(NOT ("${current_segment}" STREQUAL ""))
      if(IS_ABSOLUTE "${current_segment}")
        set(temp_path "${current_segment}")
      else()
        set(temp_path "${temp_path}/${current_segment}")
      endif()
    endif()
  endforeach()
  set(${joined_path} "${temp_path}" PARENT_SCOPE)
endfunction()
"""


def mimalloc_tree(src, tree, version):
    """A source tree for cmake: links to the crate's files, and a cmake/ folder that has the
    files the crate leaves out."""
    if tree.exists():
        shutil.rmtree(tree)
    (tree / "cmake").mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name != "cmake":
            (tree / entry.name).symlink_to(entry)
    if (src / "cmake").is_dir():
        for entry in (src / "cmake").iterdir():
            (tree / "cmake" / entry.name).symlink_to(entry)
    major, minor, patch = version.split(".")
    files = {
        "mimalloc-config-version.cmake":
            f"set(mi_version_major {major})\nset(mi_version_minor {minor})\n"
            f"set(mi_version_patch {patch})\n"
            "set(mi_version ${mi_version_major}.${mi_version_minor})\n",
        "JoinPaths.cmake": JOIN_PATHS,
    }
    for name, text in files.items():
        if not (tree / "cmake" / name).exists():
            (tree / "cmake" / name).write_text(text)
    return tree


class Built:
    """How one peer is built: the crate, the cmake source directory inside it, the options,
    the target (None: the default target), the library it produces; version(source dir,
    crate dir) says the version of the sources, tree(source dir, folder, version) makes the
    tree given to cmake (None: the source dir itself), and banner is an environment under
    which the preloaded library prints its version (checked after the build)."""

    def __init__(self, crate, subdir, options, target, output, product, version, tree=None,
                 banner=None):
        self.crate, self.subdir, self.options = crate, subdir, list(options)
        self.target, self.output, self.product = target, output, product
        self.version, self.tree, self.banner = version, tree, banner


BUILT_PEERS = {
    "mimalloc3": Built(
        "libmimalloc-sys", "c_src/mimalloc/v3",
        ["-DMI_OVERRIDE=ON", "-DMI_BUILD_SHARED=ON", "-DMI_BUILD_STATIC=OFF",
         "-DMI_BUILD_OBJECT=OFF", "-DMI_BUILD_TESTS=OFF"],
        None, "libmimalloc.so", "mimalloc", mimalloc_version, mimalloc_tree,
        banner={"MIMALLOC_VERBOSE": "1"}),
    "snmalloc": Built(
        "snmalloc-sys", "upstream", ["-DSNMALLOC_BUILD_TESTING=OFF"],
        "snmallocshim", "libsnmallocshim.so", "snmalloc", snmalloc_version),
}


def ensure_tools():
    missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if missing and not apt_install(missing):
        raise BuildError(f"missing build tools ({', '.join(missing)}) could not be installed")


def build(name):
    """Builds (or reuses) the peer's library; returns (path, description for latest.md)."""
    b = BUILT_PEERS[name]
    crate_root, crate_version = crate_dir(b.crate)
    src = crate_root / b.subdir
    version = b.version(src, crate_root)
    out = Path(cargo_metadata()["target_directory"]) / "peers" / f"{b.crate}-{crate_version}"
    lib = out / "build" / b.output
    options = [f"-DCMAKE_BUILD_TYPE={BUILD_TYPE}"] + b.options
    stamp = {"source": str(src), "options": options, "target": b.target}
    stamp_file = out / "stamp.json"
    desc = (f"{b.product} {version} built from {b.crate} {crate_version}, cmake {BUILD_TYPE} "
            f"({b.output})")
    try:
        fresh = lib.exists() and json.loads(stamp_file.read_text()) == stamp
    except (OSError, ValueError):
        fresh = False
    if fresh:
        say(f"compare: {name}: {lib} is up to date")
        return str(lib.resolve()), desc
    ensure_tools()
    if stamp_file.exists():
        stamp_file.unlink()
    tree = b.tree(src, out / "src", version) if b.tree else src
    if (out / "build").exists():
        shutil.rmtree(out / "build")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    jobs = str(len(os.sched_getaffinity(0)))
    steps = [["cmake", "-S", str(tree), "-B", str(out / "build")] + options,
             ["cmake", "--build", str(out / "build"), "-j", jobs]
             + (["--target", b.target] if b.target else [])]
    say(f"compare: building {name} ({b.product} {version}) from {src} into {out}")
    start = time.perf_counter()
    with open(log, "w") as f:
        for cmd in steps:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                raise BuildError(f"`{' '.join(cmd)}` failed; see {log}:\n"
                                 + log.read_text(errors="replace")[-1500:])
    if not lib.exists():
        raise BuildError(f"{lib} not found after the build; see {log}")
    say(f"compare: built {name} in {time.perf_counter() - start:.1f} s")
    check_replaces_malloc(lib)
    if b.banner:
        env = dict(os.environ, LD_PRELOAD=str(lib), **b.banner)
        code, text = sh([sys.executable, "-c", "pass"], env=env)
        if code != 0 or f"v{version}" not in text:
            raise BuildError(f"{lib} did not print its version v{version} under "
                             f"{' '.join(f'{k}={v}' for k, v in b.banner.items())}: {text[-300:]}")
    stamp_file.write_text(json.dumps(stamp))
    return str(lib.resolve()), desc


# The dynamic linker's report of one symbol binding (LD_DEBUG=bindings).
BINDING = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `(\w+)'")


def check_replaces_malloc(lib):
    """Raises BuildError unless the library defines malloc and free (nm -D) and a program
    started under the preload has its calls of malloc and free bound to the library. The
    dynamic linker says so with LD_DEBUG=bindings (LD_BIND_NOW=1: every binding at start-up).
    dladdr on &malloc could not: a non-PIE executable such as Debian's python3 owns the
    canonical address of every function whose address it takes (LD_DEBUG then also shows it
    bound to itself, for those address references)."""
    if shutil.which("nm"):
        code, out = sh(["nm", "-D", "--defined-only", str(lib)])
        defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
        if code != 0 or not {"malloc", "free"} <= defined:
            raise BuildError(f"{lib} does not define malloc and free (nm -D)")
    exe = os.path.realpath(sys.executable)
    env = dict(os.environ, LD_PRELOAD=str(lib), LD_DEBUG="bindings", LD_BIND_NOW="1")
    code, out = sh([exe, "-c", "pass"], env=env)
    real = os.path.realpath(lib)
    bound = {(m.group(3), os.path.realpath(m.group(2))) for m in BINDING.finditer(out)
             if os.path.realpath(m.group(1)) == exe}
    if code != 0 or not {("malloc", real), ("free", real)} <= bound:
        targets = sorted(t for f, t in bound if f in ("malloc", "free"))
        raise BuildError(f"under LD_PRELOAD={lib}, {exe}'s calls of malloc and free are not "
                         f"bound to the library (exit {code}; bound to {targets})")


def build_peers(names):
    """(name -> library, name -> description, names not built), each failure reported loudly."""
    found, described, missing = {}, {}, []
    for name in names:
        try:
            found[name], described[name] = build(name)
        except BuildError as e:
            missing.append(name)
            loud(f"{name}: could not be built, so it is not measured: {e}")
    return found, described, missing
