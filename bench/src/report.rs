//! The printed table, the JSON document, and each figure against its budget from issue 8
//! (reported, never asserted: wall-clock figures move ±15% here).

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::memory::PerItem;
use crate::runner::{Row, median};
use crate::vaultbench::VaultFigures;

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub base_rss_kib: Option<u64>,
    pub base_anon_kib: Option<u64>,
    pub keepalive: Option<PerItem>,
    pub streams: Option<PerItem>,
    pub vault: Option<VaultFigures>,
}

fn row<'a>(rows: &'a [Row], scenario: &str, target: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.target == target)
}

/// Access-log cost: 1 − median over repetitions of (rps with it on / rps with it off).
pub fn access_log_cost(rows: &[Row]) -> Option<f64> {
    let off = row(rows, "1", "gateway")?;
    let on = row(rows, "1", "gateway+access-log")?;
    let ratios = on.reps.iter().zip(&off.reps).map(|(a, b)| a.rps / b.rps);
    Some(1.0 - median(ratios.collect()))
}

/// (what, figure, budget, within budget).
fn budgets(r: &Results) -> Vec<(String, String, String, Option<bool>)> {
    let gateway = |scenario: &str| row(&r.rows, scenario, "gateway");
    let kib = |m: &Option<PerItem>| m.as_ref().map(PerItem::per_item_kib);
    // (what, figure, unit, budget, at most (else at least))
    let table: [(&str, Option<f64>, &str, f64, bool); 9] = [
        (
            "scenario 1: throughput × direct (16 conns)",
            gateway("1").and_then(|g| g.ratio),
            "×",
            0.75,
            false,
        ),
        (
            "scenario 1: gateway CPU per call",
            gateway("1").and_then(|g| g.cpu_us),
            " µs",
            25.0,
            true,
        ),
        (
            "scenario 1: added p50 at 1 conn (one core)",
            gateway("1c1s").and_then(|g| g.added_p50_us),
            " µs",
            40.0,
            true,
        ),
        (
            "scenario 1: added p50 at 1 conn (across cores)",
            gateway("1c1").and_then(|g| g.added_p50_us),
            " µs",
            40.0,
            true,
        ),
        (
            "scenario 3: throughput × scenario 1 direct",
            gateway("3").and_then(|g| g.ratio),
            "×",
            0.8,
            false,
        ),
        (
            "base memory (RSS after start)",
            r.base_rss_kib.map(|k| k as f64 / 1024.0),
            " MiB",
            10.0,
            true,
        ),
        (
            "memory per idle keep-alive connection",
            kib(&r.keepalive),
            " KiB",
            16.0,
            true,
        ),
        (
            "memory per open SSE stream",
            kib(&r.streams),
            " KiB",
            16.0,
            true,
        ),
        (
            "access log on: throughput cost",
            access_log_cost(&r.rows).map(|c| c * 100.0),
            " %",
            10.0,
            true,
        ),
    ];
    table
        .into_iter()
        .map(|(what, figure, unit, budget, at_most)| {
            let ok = figure.map(|f| if at_most { f <= budget } else { f >= budget });
            let sign = if at_most { "≤" } else { "≥" };
            (
                what.to_owned(),
                figure.map_or("not measured".into(), |f| format!("{f:.2}{unit}")),
                format!("{sign} {budget}{unit}"),
                ok,
            )
        })
        .collect()
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

pub fn print(r: &Results) {
    println!();
    println!(
        "{:<5} {:<20} {:>5} {:>10} {:>9} {:>9} {:>8} {:>10} {:>11}",
        "scen", "target", "conns", "req/s", "p50 µs", "p99 µs", "×direct", "+p50 µs", "CPU µs/req"
    );
    let mut last = String::new();
    for row in &r.rows {
        if row.scenario != last {
            println!("-- {}: {}", row.scenario, row.title);
            last = row.scenario.clone();
        }
        println!(
            "{:<5} {:<20} {:>5} {:>10.0} {:>9.1} {:>9.1} {:>8} {:>10} {:>11}",
            row.scenario,
            row.target,
            row.conns,
            row.rps,
            row.p50_us,
            row.p99_us,
            opt(row.ratio, 3),
            opt(row.added_p50_us, 1),
            opt(row.cpu_us, 1)
        );
    }
    println!();
    if let Some(k) = r.base_rss_kib {
        let anon = r.base_anon_kib.map_or(String::new(), |a| {
            format!(
                " ({:.1} MiB anonymous, {:.1} MiB file-backed: code pages of the binary and its libraries)",
                a as f64 / 1024.0,
                k.saturating_sub(a) as f64 / 1024.0
            )
        });
        println!(
            "base memory: {:.1} MiB RSS after start{anon}",
            k as f64 / 1024.0
        );
    }
    for m in [&r.keepalive, &r.streams].into_iter().flatten() {
        println!(
            "memory per {}: {:.2} KiB ({} opened, RSS {} → {} KiB{})",
            m.what,
            m.per_item_kib(),
            m.opened,
            m.before_kib,
            m.after_kib,
            match m.released {
                Some(true) => ", upstream side released after the clients left",
                Some(false) => ", upstream side NOT released after the clients left",
                None => "",
            }
        );
    }
    if let Some(v) = &r.vault {
        println!(
            "vault: seal {:.0}/s, open {:.0}/s; sealed session id check {:.0}/s",
            v.seal_per_s, v.open_per_s, v.session_check_per_s
        );
    }
    println!();
    println!("budgets (issue 8; wall-clock figures, reported not asserted):");
    for (what, figure, budget, ok) in budgets(r) {
        let mark = match ok {
            Some(true) => "ok  ",
            Some(false) => "MISS",
            None => "-   ",
        };
        println!("  {mark} {what:<46} {figure:>14}  (budget {budget})");
    }
}

fn cmd(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Machine, toolchain and source identity.
pub fn environment() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned());
    // The gateway's own sources (not the harness, not the lock file).
    let dirty = !cmd("git", &["status", "--porcelain", "--", "src", "migrations"]).is_empty();
    json!({
        "date": cmd("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "cores": crate::procs::online_cpus(),
        "cpu": model,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "rustc": cmd("rustc", &["-V"]),
        "commit": cmd("git", &["rev-parse", "--short", "HEAD"]),
        "gateway_sources_modified": dirty,
    })
}

/// `env`: [`environment`] as it was when the run started (the sources may change during it).
pub fn to_json(r: &Results, env: Value, settings: Value) -> Value {
    json!({
        "environment": env,
        "settings": settings,
        "rows": r.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "base_rss_kib": r.base_rss_kib,
        "base_anon_kib": r.base_anon_kib,
        "keepalive": r.keepalive.as_ref().map(PerItem::to_json),
        "sse_streams": r.streams.as_ref().map(PerItem::to_json),
        "access_log_cost": access_log_cost(&r.rows),
        "vault": r.vault.as_ref().map(VaultFigures::to_json),
        "budgets": budgets(r).into_iter().map(|(what, figure, budget, ok)| json!({
            "what": what, "figure": figure, "budget": budget, "within": ok})).collect::<Vec<_>>(),
    })
}

pub fn write(path: &Path, doc: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(doc)? + "\n")?;
    Ok(())
}
