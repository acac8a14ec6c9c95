//! Where the instructions of one `tools/call` go: `callgrind_annotate` of the low and the high
//! run, subtracted function by function and divided by the extra calls, so start-up cancels
//! out here too. Inclusive (a function and everything it calls) and self.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::callgrind::Run;

/// Function → Ir, from `callgrind_annotate` output.
fn annotate(file: &Path, inclusive: bool) -> Result<HashMap<String, f64>> {
    let out = std::process::Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg(file)
        .output()
        .context("running callgrind_annotate")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((num, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(ir) = num.replace(',', "").parse::<f64>() else {
            continue;
        };
        // "(12.34%)  file:function [object]"
        let name = rest
            .trim_start()
            .split_once(')')
            .map_or(rest, |(_, n)| n)
            .trim();
        // `fn'2`: callgrind's separate entry for a recursive call; its inclusive cost is
        // already in `fn`.
        let recursion = name
            .split(" [")
            .next()
            .and_then(|n| n.rsplit_once('\''))
            .is_some_and(|(_, d)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        if name.is_empty() || name == "PROGRAM TOTALS" || recursion {
            continue;
        }
        *map.entry(name.to_owned()).or_insert(0.0) += ir;
    }
    Ok(map)
}

/// Ir per extra call of each function, largest first.
pub fn per_call(low: &Run, high: &Run, inclusive: bool) -> Result<Vec<(String, f64)>> {
    let a = annotate(&low.out_file, inclusive)?;
    let b = annotate(&high.out_file, inclusive)?;
    let extra = (high.calls - low.calls) as f64;
    let mut v: Vec<(String, f64)> = b
        .into_iter()
        .map(|(name, ir)| {
            let before = a.get(&name).copied().unwrap_or(0.0);
            (name, (ir - before) / extra)
        })
        .filter(|(_, ir)| *ir >= 1.0)
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    Ok(v)
}

/// Shortens `file:function [object]` to the function.
pub fn short(name: &str) -> &str {
    let name = name.split(" [").next().unwrap_or(name);
    name.strip_prefix("???:").unwrap_or(name)
}

/// The crate (or `switchboard::<module>`, or a libc area) a function belongs to.
pub fn area(name: &str) -> String {
    let f = short(name);
    let file = name.split(':').next().unwrap_or("");
    if file.contains("malloc") || file.contains("arena.c") {
        return "libc malloc/free".into();
    }
    if file.contains("multiarch") || file.contains("string/") {
        return "libc memcpy/memcmp/str*".into();
    }
    if file.contains("nptl") {
        return "libc pthread (locks)".into();
    }
    if f.starts_with("sqlite3") {
        return "sqlite (C)".into();
    }
    if file.starts_with("./") || file.contains("sysdeps") {
        return "libc other".into();
    }
    let path = f
        .trim_start_matches('<')
        .trim_start_matches('&')
        .trim_start_matches("mut ");
    let mut parts = path.split("::");
    let krate = parts.next().unwrap_or(path);
    if krate == "switchboard" {
        if let Some(module) = parts.next() {
            return format!(
                "switchboard::{}",
                module.split(['<', ' ', '>']).next().unwrap_or(module)
            );
        }
    }
    krate
        .split(['<', ' ', '>'])
        .next()
        .unwrap_or(krate)
        .to_owned()
}

/// Self cost per call summed by [`area`], largest first.
pub fn by_area(own: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut sums: HashMap<String, f64> = HashMap::new();
    for (name, ir) in own {
        *sums.entry(area(name)).or_insert(0.0) += ir;
    }
    let mut v: Vec<_> = sums.into_iter().collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    v
}

pub fn print(title: &str, rows: &[(String, f64)], top: usize) {
    println!("\n{title}");
    for (name, ir) in rows.iter().take(top) {
        let name: String = short(name).chars().take(160).collect();
        println!("  {ir:>10.0}  {name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas() {
        let bin = " [/x/target/release/switchboard]";
        let cases = [
            (
                "./malloc/./malloc/malloc.c:_int_malloc [/usr/lib/libc.so.6]",
                "libc malloc/free",
            ),
            ("???:sqlite3VdbeExec", "sqlite (C)"),
            (
                "???:switchboard::gateway::mcp_relay::relay::{{closure}}",
                "switchboard::gateway",
            ),
            (
                "???:<switchboard::store::sql::SqlStore as switchboard::store::Store>::find_api_key",
                "switchboard::store",
            ),
            (
                "???:<hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::parse",
                "hyper",
            ),
            ("???:tokio::runtime::task::raw::poll", "tokio"),
        ];
        for (name, want) in cases {
            assert_eq!(area(&format!("{name}{bin}")), want, "{name}");
        }
        assert_eq!(short("???:a::b [/bin]"), "a::b");
    }
}
