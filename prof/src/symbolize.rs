//! Turning a profile's return addresses into functions, files and lines, with nothing but the
//! profile's copy of /proc/self/maps and the files it names: no live process.
//!
//! For an address: the mapping that holds it gives the file and the file offset
//! (`addr - start + offset`); the file's PT_LOAD program headers turn the offset into the ELF
//! virtual address that its DWARF and symbol tables use. DWARF (from the file, or from its
//! separate debug file under /usr/lib/debug, found by build id or `.gnu_debuglink`) gives the
//! function, file:line and inlined frames; without it, the ELF symbol tables (`.symtab`, else
//! `.dynsym`) give the function whose extent holds the address. Anything else prints as
//! `module+0xoffset`, or `0xaddr` outside every mapping. Each file is opened once.
//!
//! Every address is a return address, so the lookup is done at `addr - 1`: the call
//! instruction, whose line is the one that allocated (the return address may belong to the
//! next line, or even to the next function after a call that does not return).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

use crate::parse::Mapping;

/// One function frame of a symbolised address.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Demangled name, or `module+0xoff` / `0xaddr` when unknown.
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Basename of the mapped file, when there is one.
    pub module: Option<String>,
    /// True when the name comes from no debug information or symbol.
    pub unknown: bool,
}

impl Frame {
    /// `file:line`, `file`, or the module, for the report.
    pub fn location(&self) -> Option<String> {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => Some(format!("{}:{l}", short_path(f))),
            (Some(f), None) => Some(short_path(f).to_string()),
            _ => self.module.clone().filter(|_| !self.unknown),
        }
    }
}

/// The last two components of a source path: enough to recognise it, short enough to read.
fn short_path(p: &str) -> &str {
    let mut cut = p.len();
    for _ in 0..2 {
        match p[..cut].rfind('/') {
            Some(i) => cut = i,
            None => return p,
        }
    }
    &p[cut + 1..]
}

/// Symbolises addresses against one profile's mappings, caching files and addresses.
pub struct Symbolizer {
    mappings: Vec<Mapping>,
    objects: HashMap<String, Option<ObjectInfo>>,
    cache: HashMap<u64, Vec<Frame>>,
    /// Files that could not be read, with why (each once), for the report.
    pub problems: Vec<String>,
}

/// What is kept of one mapped ELF file.
struct ObjectInfo {
    /// (file offset, file size, virtual address) of each PT_LOAD segment.
    loads: Vec<(u64, u64, u64)>,
    /// DWARF of the file or of its debug file, when it has any.
    dwarf: Option<addr2line::Loader>,
    /// Function symbols of `.symtab` and `.dynsym`, sorted by address.
    symbols: Vec<Symbol>,
}

struct Symbol {
    addr: u64,
    size: u64,
    name: String,
}

impl Symbolizer {
    pub fn new(mut mappings: Vec<Mapping>) -> Self {
        mappings.sort_by_key(|m| m.start);
        Symbolizer {
            mappings,
            objects: HashMap::new(),
            cache: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// The frames at a return address, innermost (inlined) first; never empty.
    pub fn frames(&mut self, addr: u64) -> &[Frame] {
        if !self.cache.contains_key(&addr) {
            let frames = self.lookup(addr);
            self.cache.insert(addr, frames);
        }
        self.cache.get(&addr).map_or(&[], Vec::as_slice)
    }

    fn lookup(&mut self, addr: u64) -> Vec<Frame> {
        let unknown = |function: String, module: Option<String>| {
            vec![Frame {
                function,
                module,
                unknown: true,
                ..Frame::default()
            }]
        };
        let i = self.mappings.partition_point(|m| m.start <= addr);
        let Some(m) = i
            .checked_sub(1)
            .map(|i| &self.mappings[i])
            .filter(|m| addr < m.end && !m.path.is_empty())
        else {
            return unknown(format!("{addr:#x}"), None);
        };
        let path = m.path.clone();
        let module = Path::new(&path)
            .file_name()
            .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        // Wrapping: a malformed profile may give any offset; the lookup then finds nothing.
        let file_offset = (addr - m.start).wrapping_add(m.offset);
        let fallback = format!("{module}+{file_offset:#x}");
        if path.starts_with('[') {
            return unknown(fallback, Some(module));
        }
        if !self.objects.contains_key(&path) {
            if let Some(now) = changed_since(&path, m.inode) {
                self.problems.push(format!(
                    "{path} has changed since the profile was written (inode {} then, {now} \
                     now): its names may be wrong",
                    m.inode
                ));
            }
            let info = match ObjectInfo::open(&path) {
                Ok(info) => Some(info),
                Err(e) => {
                    self.problems.push(format!("{path}: not symbolised: {e}"));
                    None
                }
            };
            self.objects.insert(path.clone(), info);
        }
        let Some(Some(obj)) = self.objects.get(&path) else {
            return unknown(fallback, Some(module));
        };
        // The call instruction is the byte before the return address.
        let Some(vaddr) = obj.vaddr(file_offset.saturating_sub(1)) else {
            return unknown(fallback, Some(module));
        };
        let mut frames = obj.dwarf_frames(vaddr, &module);
        if frames.is_empty() {
            if let Some(name) = obj.symbol(vaddr) {
                frames.push(Frame {
                    function: name,
                    module: Some(module.clone()),
                    ..Frame::default()
                });
            }
        } else if let Some(outer) = frames.last_mut().filter(|f| f.function.is_empty()) {
            // DWARF had a line but no function name: take the name from the symbol table.
            outer.function = obj.symbol(vaddr).unwrap_or_else(|| fallback.clone());
        }
        frames.retain(|f| !f.function.is_empty());
        if frames.is_empty() {
            return unknown(fallback, Some(module));
        }
        frames
    }
}

/// The file's inode now, when it is not the one the profile recorded (a rebuilt binary is a
/// new file). Unknown inodes (0) are not compared.
fn changed_since(path: &str, inode: u64) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::metadata(path).ok()?.ino();
    (inode != 0 && now != inode).then_some(now)
}

impl ObjectInfo {
    fn open(path: &str) -> Result<ObjectInfo, String> {
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        let file = File::open(path).map_err(|e| e.to_string())?;
        let cache = object::ReadCache::new(file);
        let obj = object::File::parse(&cache).map_err(|e| format!("not an ELF file: {e}"))?;
        let loads = obj
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let mut symbols = Vec::new();
        collect_symbols(&obj, &mut symbols);
        let debug = debug_file(Path::new(path), &obj);
        if let Some(d) = &debug {
            // A debug file's .symtab is the full one that stripping removed.
            if let Ok(f) = File::open(d) {
                let c = object::ReadCache::new(f);
                if let Ok(o) = object::File::parse(&c) {
                    collect_symbols(&o, &mut symbols);
                }
            }
        }
        symbols.sort_by_key(|s| (s.addr, std::cmp::Reverse(s.size)));
        symbols.dedup_by_key(|s| s.addr);
        let dwarf_path = debug.as_deref().unwrap_or(Path::new(path));
        let dwarf = addr2line::Loader::new(dwarf_path).ok();
        Ok(ObjectInfo {
            loads,
            dwarf,
            symbols,
        })
    }

    fn vaddr(&self, file_offset: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|(off, size, _)| (*off..off.saturating_add(*size)).contains(&file_offset))
            .map(|(off, _, va)| (file_offset - off).wrapping_add(*va))
    }

    /// DWARF frames at `vaddr`, innermost first; empty without DWARF for it.
    fn dwarf_frames(&self, vaddr: u64, module: &str) -> Vec<Frame> {
        let mut out = Vec::new();
        let Some(loader) = &self.dwarf else {
            return out;
        };
        let Ok(mut iter) = loader.find_frames(vaddr) else {
            return out;
        };
        while let Ok(Some(f)) = iter.next() {
            let function = f
                .function
                .as_ref()
                .and_then(|n| n.demangle().ok())
                .map(|n| n.into_owned())
                .unwrap_or_default();
            let (file, line) = match &f.location {
                Some(l) => (l.file.map(str::to_string), l.line),
                None => (None, None),
            };
            if function.is_empty() && file.is_none() {
                continue;
            }
            out.push(Frame {
                function,
                file,
                line,
                module: Some(module.to_string()),
                unknown: false,
            });
        }
        out
    }

    /// The function symbol whose extent holds `vaddr` (a symbol of unknown size only when it
    /// is the nearest one below).
    fn symbol(&self, vaddr: u64) -> Option<String> {
        let i = self.symbols.partition_point(|s| s.addr <= vaddr);
        let s = &self.symbols[i.checked_sub(1)?];
        let inside = if s.size == 0 {
            true
        } else {
            vaddr - s.addr < s.size
        };
        inside.then(|| demangle(&s.name))
    }
}

fn collect_symbols<'a, R: object::ReadRef<'a>>(obj: &object::File<'a, R>, out: &mut Vec<Symbol>) {
    for s in obj.symbols().chain(obj.dynamic_symbols()) {
        if s.kind() != SymbolKind::Text || s.address() == 0 || !s.is_definition() {
            continue;
        }
        if let Ok(name) = s.name() {
            if !name.is_empty() {
                out.push(Symbol {
                    addr: s.address(),
                    size: s.size(),
                    name: name.to_string(),
                });
            }
        }
    }
}

/// Rust or C++ demangling, else the name as it is (C). A versioned dynamic symbol keeps its
/// name only.
pub fn demangle(name: &str) -> String {
    let name = name.split('@').next().unwrap_or(name);
    addr2line::demangle_auto(name.into(), None).into_owned()
}

/// The separate debug file of `path`, when one is installed: by build id
/// (`/usr/lib/debug/.build-id/xx/rest.debug`), else by `.gnu_debuglink` (next to the file, in
/// its `.debug/`, or under `/usr/lib/debug` + its directory), as gdb looks for them.
fn debug_file<'a, R: object::ReadRef<'a>>(
    path: &Path,
    obj: &object::File<'a, R>,
) -> Option<PathBuf> {
    if let Ok(Some(id)) = obj.build_id() {
        if let Some((first, rest)) = id.split_first() {
            let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
            let p = PathBuf::from(format!("/usr/lib/debug/.build-id/{first:02x}/{hex}.debug"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let (name, _crc) = obj.gnu_debuglink().ok().flatten()?;
    let name = std::str::from_utf8(name).ok()?;
    let dir = path.parent()?;
    let mut candidates = vec![dir.join(name), dir.join(".debug").join(name)];
    if let Ok(rel) = dir.strip_prefix("/") {
        candidates.push(Path::new("/usr/lib/debug").join(rel).join(name));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file() && c.as_path() != path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_keep_two_components() {
        assert_eq!(short_path("/a/b/c/d.rs"), "c/d.rs");
        assert_eq!(short_path("c/d.rs"), "c/d.rs");
        assert_eq!(short_path("d.rs"), "d.rs");
    }

    #[test]
    fn demangles_rust_cpp_and_versioned_names() {
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(demangle("_Znwm"), "operator new(unsigned long)");
        assert_eq!(demangle("malloc@@GLIBC_2.2.5"), "malloc");
    }

    #[test]
    fn addresses_outside_mappings_print_as_hex() {
        let mut s = Symbolizer::new(vec![Mapping {
            start: 0x1000,
            end: 0x2000,
            perms: "r-xp".into(),
            offset: 0x3000,
            inode: 0,
            path: "/nonexistent/libgone.so".into(),
        }]);
        assert_eq!(s.frames(0x5000)[0].function, "0x5000");
        let f = &s.frames(0x1010)[0];
        assert_eq!(f.function, "libgone.so+0x3010");
        assert!(f.unknown);
        assert_eq!(s.problems.len(), 1);
        // A nonsense offset does not overflow.
        let mut s = Symbolizer::new(vec![Mapping {
            start: 0x1000,
            end: 0x2000,
            perms: "r-xp".into(),
            offset: u64::MAX,
            inode: 0,
            path: "/proc/self/exe".into(),
        }]);
        assert!(s.frames(0x1fff)[0].unknown);
    }

    #[test]
    fn a_replaced_file_is_noted() {
        let dir = std::env::temp_dir().join(format!("mapalloc-prof-inode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("lib.so");
        std::fs::write(&lib, "not elf").unwrap();
        let mut s = Symbolizer::new(vec![Mapping {
            start: 0x1000,
            end: 0x2000,
            perms: "r-xp".into(),
            offset: 0,
            inode: 1,
            path: lib.to_string_lossy().into_owned(),
        }]);
        s.frames(0x1001);
        assert!(
            s.problems[0].contains("has changed since"),
            "{:?}",
            s.problems
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symbolises_this_test_binary() {
        // Map this executable as the kernel would (its own /proc/self/maps) and look up a
        // return address inside a known function.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let profile = crate::parse::parse(&format!(
            "heap profile: 0: 0 [0: 0] @ heapprofile\nMAPPED_LIBRARIES:\n{maps}"
        ))
        .unwrap();
        let mut s = Symbolizer::new(profile.mappings);
        let addr = marker as fn() -> u32 as usize as u64 + 1;
        let frames = s.frames(addr);
        assert!(
            frames.iter().any(|f| f.function.ends_with("marker")),
            "{frames:?}"
        );
    }

    #[inline(never)]
    fn marker() -> u32 {
        std::hint::black_box(7)
    }
}
