//! Output files: folded stacks (Brendan Gregg's collapsed format) and flame graph SVGs.
//!
//! A folded line is the stack outermost frame first, frames joined by `;`, then a space and
//! the value: `main;work;leak_a 123456`. Values are estimated bytes, rounded; identical
//! stacks (two addresses of one function, say) are merged and lines with no bytes left out.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::report::Resolved;

/// Folded lines for one measure of the stacks (`pick` gives its bytes), sorted by stack.
pub fn folded(stacks: &[Resolved], pick: impl Fn(&Resolved) -> f64) -> Vec<(String, u64)> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for s in stacks {
        let bytes = pick(s).round();
        if bytes < 1.0 || s.frames.is_empty() {
            continue;
        }
        let names: Vec<String> = s.frames.iter().rev().map(|f| clean(&f.function)).collect();
        let v = merged.entry(names.join(";")).or_default();
        *v = v.saturating_add(bytes as u64);
    }
    merged.into_iter().collect()
}

/// A frame name as one folded field: no `;` (the separator) and no line breaks.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ';' => ',',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// The folded lines as text, one per line.
pub fn folded_text(lines: &[(String, u64)]) -> String {
    let mut out = String::new();
    for (stack, v) in lines {
        out.push_str(stack);
        out.push(' ');
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// Writes a flame graph of `lines` to `path`. With no bytes at all, a small SVG that says so.
pub fn flame_graph(
    path: &Path,
    lines: &[(String, u64)],
    title: &str,
    subtitle: &str,
    empty_message: &str,
) -> io::Result<()> {
    if lines.is_empty() {
        return fs::write(path, empty_svg(title, subtitle, empty_message));
    }
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = title.to_string();
    opt.subtitle = Some(subtitle.to_string());
    opt.count_name = "bytes".to_string();
    opt.colors =
        inferno::flamegraph::Palette::Multi(inferno::flamegraph::color::MultiPalette::Rust);
    let text = folded_text(lines);
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut opt, text.lines(), &mut svg)?;
    fs::write(path, svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn empty_svg(title: &str, subtitle: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"110\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#eeeeee\"/>\n\
         <text x=\"600\" y=\"28\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}</text>\n\
         <text x=\"600\" y=\"52\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"12\" fill=\"#a0a0a0\">{}</text>\n\
         <text x=\"600\" y=\"86\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"14\">{}</text>\n\
         </svg>\n",
        escape(title),
        escape(subtitle),
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::Frame;

    fn stack(names: &[&str], inuse: f64, alloc: f64) -> Resolved {
        Resolved {
            frames: names
                .iter()
                .map(|n| Frame {
                    function: n.to_string(),
                    ..Frame::default()
                })
                .collect(),
            inuse: (1.0, inuse),
            alloc: (1.0, alloc),
        }
    }

    #[test]
    fn folded_is_outermost_first_merged_and_rounded() {
        let stacks = vec![
            stack(&["leak_a", "work", "main"], 1000.4, 2000.0),
            stack(&["leak_a", "work", "main"], 23.4, 0.0),
            stack(&["free_all", "main"], 0.0, 5000.0),
            stack(&["f<[u8; 8]>", "main"], 7.0, 7.0),
        ];
        let inuse = folded(&stacks, |s| s.inuse.1);
        assert_eq!(
            folded_text(&inuse),
            "main;f<[u8, 8]> 7\nmain;work;leak_a 1023\n"
        );
        let alloc = folded(&stacks, |s| s.alloc.1);
        assert_eq!(
            folded_text(&alloc),
            "main;f<[u8, 8]> 7\nmain;free_all 5000\nmain;work;leak_a 2000\n"
        );
    }

    #[test]
    fn svgs_name_functions_and_empty_ones_say_why() {
        let dir = std::env::temp_dir().join(format!("mapalloc-prof-render-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.svg");
        let lines = folded(&[stack(&["leak_a", "main"], 4096.0, 4096.0)], |s| s.inuse.1);
        flame_graph(&p, &lines, "In use", "sub", "none").unwrap();
        let svg = fs::read_to_string(&p).unwrap();
        assert!(svg.contains("leak_a") && svg.contains("bytes"), "{svg}");
        flame_graph(&p, &[], "In use <x>", "sub", "nothing leaked").unwrap();
        let svg = fs::read_to_string(&p).unwrap();
        assert!(svg.contains("nothing leaked") && svg.contains("In use &lt;x&gt;"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
