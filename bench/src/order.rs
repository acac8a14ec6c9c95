//! The code layout list (`link/symbol-order.txt`, decision 018): the functions of the gateway
//! binary that a whole callgrind run executed (start-up, set-up through the API, relayed
//! calls, shutdown), hottest first, by their symbol names as the linker knows them. `build.rs`
//! hands it to the linker, which places those functions together.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result};

/// The functions of `binary` (by file name) in a callgrind output written with
/// `--demangle=no`, with their own (self) instruction counts, hottest first.
pub fn executed(callgrind_out: &Path, binary: &str) -> Result<Vec<(String, u64)>> {
    let text = std::fs::read_to_string(callgrind_out)
        .with_context(|| format!("reading {}", callgrind_out.display()))?;
    let mut objects: HashMap<String, String> = HashMap::new();
    let mut functions: HashMap<String, String> = HashMap::new();
    let mut cost: HashMap<String, u64> = HashMap::new();
    let mut in_binary = false;
    let mut current: Option<String> = None;
    let mut call_cost_next = false;
    // `key=(id) name` defines id; `key=(id)` refers to it.
    fn name_of(value: &str, table: &mut HashMap<String, String>) -> String {
        match value.strip_prefix('(').and_then(|v| v.split_once(')')) {
            Some((id, rest)) if !rest.trim().is_empty() => {
                table.insert(id.to_owned(), rest.trim().to_owned());
                rest.trim().to_owned()
            }
            Some((id, _)) => table.get(id).cloned().unwrap_or_default(),
            None => value.trim().to_owned(),
        }
    }
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("ob=") {
            let ob = name_of(v, &mut objects);
            in_binary = Path::new(&ob).file_name().is_some_and(|f| f == binary);
        } else if let Some(v) = line.strip_prefix("cob=") {
            name_of(v, &mut objects);
        } else if let Some(v) = line.strip_prefix("fn=") {
            let f = name_of(v, &mut functions);
            // Recursion levels are named `f'2`, `f'3`, …: the same function.
            let f = match f.rsplit_once('\'') {
                Some((base, level)) if level.chars().all(|c| c.is_ascii_digit()) => base.to_owned(),
                _ => f,
            };
            current = in_binary.then_some(f);
        } else if let Some(v) = line.strip_prefix("cfn=") {
            name_of(v, &mut functions);
        } else if line.starts_with("calls=") {
            call_cost_next = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
            if std::mem::take(&mut call_cost_next) {
                continue; // a call's inclusive cost, not the caller's own
            }
            if let Some(f) = &current {
                let ir: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                *cost.entry(f.clone()).or_default() += ir;
            }
        }
    }
    let mut out: Vec<(String, u64)> = cost
        .into_iter()
        // Valgrind's own names (`0x…` for an address without a symbol, `(below main)`).
        .filter(|(name, _)| !name.is_empty() && !name.starts_with("0x") && !name.contains(' '))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Writes the list (a `#` comment first; LLD skips comments).
pub fn write(path: &Path, functions: &[(String, u64)], how: &str) -> Result<()> {
    let mut text = format!(
        "# Code layout for the linker (decision 018), hottest first: {} functions.\n# Made by {how}; do not edit.\n",
        functions.len()
    );
    for (name, _) in functions {
        text.push_str(name);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// How many names of the list `binary` defines, of how many.
pub fn coverage(list: &Path, binary: &Path) -> Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
    let out = std::process::Command::new("nm")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .context("running nm")?;
    anyhow::ensure!(out.status.success(), "nm {} failed", binary.display());
    let symbols = String::from_utf8_lossy(&out.stdout);
    let defined: HashSet<&str> = symbols
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let found = names.iter().filter(|n| defined.contains(*n)).count();
    Ok((found, names.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_costs_of_the_binarys_functions() {
        let scratch = crate::Scratch::new("order-test").unwrap();
        let dir = &scratch.0;
        let file = dir.join("cg.out");
        std::fs::write(
            &file,
            "events: Ir\nob=(1) /x/switchboard\nfl=(1) a.rs\nfn=(1) _ZN1a4mainE\n3 10\n\
             cob=(2) /lib/libc.so.6\ncfn=(2) memcpy\ncalls=1 0\n4 500\n+1 5\n\
             fn=(3) hot'2\n1 40\nob=(2)\nfn=(2)\n1 900\nob=(1)\nfn=(3)\n2 2\nfn=(1)\n5 1\n",
        )
        .unwrap();
        let got = executed(&file, "switchboard").unwrap();
        assert_eq!(
            got,
            [("hot".to_owned(), 42), ("_ZN1a4mainE".to_owned(), 16)]
        );
        let list = dir.join("order.txt");
        write(&list, &got, "a test").unwrap();
        let text = std::fs::read_to_string(&list).unwrap();
        assert!(text.starts_with("# Code layout"));
        assert!(text.ends_with("hot\n_ZN1a4mainE\n"));
    }
}
