//! `mapalloc-prof`: read a heap profile or leak report in the gperftools text format (as
//! mapalloc writes with `MAPALLOC_PROF`, or gperftools' `HEAPPROFILE`), symbolise it from the
//! files its MAPPED_LIBRARIES section names, and write
//!
//! - `PREFIX.collapsed`: folded stacks of estimated in-use bytes;
//! - `PREFIX.inuse.svg`: a flame graph of in-use bytes (at exit: the leaks);
//! - `PREFIX.alloc.svg`: a flame graph of all bytes allocated over the run;
//!
//! then print the totals and the top call sites by in-use bytes.
//!
//! Modules, in the order data flows: `parse` (the file, and pprof's scaling), `symbolize`
//! (addresses to frames), `report` (call sites, the text), `render` (folded stacks, SVGs).

mod parse;
mod render;
mod report;
mod symbolize;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use report::Resolved;

const USAGE: &str = "usage: mapalloc-prof [--top N] [--out PREFIX] PROFILE

Reads a heap profile in the gperftools text format (MAPALLOC_PROF=1 or =leaks, or
gperftools' HEAPPROFILE), symbolises it, prints the top N call sites by in-use bytes
(default 10) and writes PREFIX.collapsed, PREFIX.inuse.svg and PREFIX.alloc.svg
(PREFIX defaults to PROFILE).";

struct Args {
    top: usize,
    out: Option<PathBuf>,
    profile: PathBuf,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Parsed, String> {
    let mut top = 10;
    let mut out = None;
    let mut profile = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("-h" | "--help") => return Ok(Parsed::Help),
            Some("--top") => {
                let v = args.next().ok_or("--top needs a number")?;
                top = v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    format!("--top: `{}` is not a whole number", v.to_string_lossy())
                })?;
            }
            Some("--out") => out = Some(PathBuf::from(args.next().ok_or("--out needs a prefix")?)),
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option `{s}`"));
            }
            _ if profile.is_none() => profile = Some(PathBuf::from(a)),
            _ => return Err("only one profile at a time".into()),
        }
    }
    let profile = profile.ok_or("no profile named")?;
    Ok(Parsed::Run(Args { top, out, profile }))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mapalloc-prof: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mapalloc-prof: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let start = Instant::now();
    let shown = args.profile.display();
    let bytes = std::fs::read(&args.profile).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let profile = parse::parse(&text).map_err(|e| format!("{shown}: {e}"))?;

    let mut sym = symbolize::Symbolizer::new(profile.mappings.clone());
    let stacks: Vec<Resolved> = profile
        .stacks
        .iter()
        .map(|s| Resolved {
            frames: s
                .addrs
                .iter()
                .flat_map(|&a| sym.frames(a).to_vec())
                .collect(),
            inuse: profile.inuse(s),
            alloc: profile.alloc(s),
        })
        .collect();

    let prefix = args.out.clone().unwrap_or_else(|| args.profile.clone());
    let with = |ext: &str| {
        let mut p = prefix.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (collapsed, inuse_svg, alloc_svg) =
        (with(".collapsed"), with(".inuse.svg"), with(".alloc.svg"));
    let inuse = render::folded(&stacks, |s| s.inuse.1);
    let alloc = render::folded(&stacks, |s| s.alloc.1);
    let write_err = |p: &PathBuf, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    std::fs::write(&collapsed, render::folded_text(&inuse))
        .map_err(|e| write_err(&collapsed, e))?;
    let name = args
        .profile
        .file_name()
        .map_or_else(|| shown.to_string(), |n| n.to_string_lossy().into_owned());
    let (ib, ab) = (
        report::totals(&stacks, |s| s.inuse),
        report::totals(&stacks, |s| s.alloc),
    );
    let scaled = if profile.period > 1 {
        format!(", estimated from samples every {} bytes", profile.period)
    } else {
        String::new()
    };
    render::flame_graph(
        &inuse_svg,
        &inuse,
        "In-use heap bytes at the dump (a profile written at exit: the leaks)",
        &format!(
            "{name}: {} in {:.0} blocks{scaled}",
            report::human(ib.1),
            ib.0
        ),
        "no live blocks at the dump: nothing leaked",
    )
    .map_err(|e| write_err(&inuse_svg, e))?;
    render::flame_graph(
        &alloc_svg,
        &alloc,
        "All heap bytes allocated over the run",
        &format!(
            "{name}: {} in {:.0} blocks{scaled}",
            report::human(ab.1),
            ab.0
        ),
        "no allocation recorded",
    )
    .map_err(|e| write_err(&alloc_svg, e))?;

    println!("mapalloc-prof: {shown}");
    print!("{}", report::render(&profile, &stacks, args.top));
    for p in &sym.problems {
        println!("note: {p}");
    }
    println!(
        "\nwrote {}\n      {}\n      {}\n({} stacks, {} mappings, {:.2} s)",
        collapsed.display(),
        inuse_svg.display(),
        alloc_svg.display(),
        stacks.len(),
        profile.mappings.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Parsed, String> {
        parse_args(v.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn command_line() {
        let Ok(Parsed::Run(a)) = args(&["--top", "3", "--out", "x/y", "p.heap"]) else {
            panic!("not parsed");
        };
        assert_eq!(
            (a.top, a.out, a.profile),
            (3, Some("x/y".into()), "p.heap".into())
        );
        assert!(matches!(args(&["--help"]), Ok(Parsed::Help)));
        for (bad, why) in [
            (&[][..], "no profile"),
            (&["--top"][..], "needs a number"),
            (&["--top", "x", "p"][..], "not a whole number"),
            (&["--bogus", "p"][..], "unknown option"),
            (&["a", "b"][..], "one profile"),
        ] {
            let e = args(bad).err().unwrap_or_default();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
