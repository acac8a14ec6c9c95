//! `bench callgrind`: the instruction gate's command — measure (optionally several times, to
//! check determinism), profile, compare with `bench/baseline.json` or rewrite it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::{Common, Scratch, callgrind, order, procs, profile, report, rig, runner};

#[derive(Args, Debug)]
pub struct GateArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 200)]
    pub low: u64,
    #[arg(long, default_value_t = 1200)]
    pub high: u64,
    /// Measure the figure this many times (determinism check).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    #[arg(long, default_value = "bench/baseline.json")]
    pub baseline: PathBuf,
    /// Write the measured figure into the baseline instead of comparing.
    #[arg(long)]
    pub update_baseline: bool,
    /// Print the top N functions by instructions per call (inclusive and self).
    #[arg(long, default_value_t = 0)]
    pub profile: usize,
    /// Instead of the figure: write the code layout list here (decision 018) from a whole run.
    #[arg(long)]
    pub write_order: Option<PathBuf>,
    /// The code layout list whose coverage of the binary is checked.
    #[arg(long, default_value = "link/symbol-order.txt")]
    pub order: PathBuf,
    /// Where callgrind files and callgrind.json go.
    #[arg(long, default_value = "bench/results")]
    pub out_dir: PathBuf,
}

pub async fn run(a: GateArgs) -> Result<()> {
    let (_, side_cpu) = a.common.cpus();
    let bin = a.common.gateway_bin()?;
    anyhow::ensure!(procs::which("valgrind"), "valgrind is not installed");
    anyhow::ensure!(a.high > a.low, "--high must be above --low");
    std::fs::create_dir_all(&a.out_dir)?;
    let scratch = Scratch::new("callgrind")?;
    let up = rig::Upstream::start("upstream", side_cpu).await?;
    if let Some(path) = &a.write_order {
        eprintln!(
            "bench: callgrind run for the code layout: start-up, set-up, {} calls, shutdown",
            a.low
        );
        let r = callgrind::run_once(&bin, &scratch.0, &up, a.low, false, true).await?;
        let _ = up.proc.stop(Duration::from_secs(5)).await;
        let name = bin
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("switchboard");
        let functions = order::executed(&r.out_file, name)?;
        anyhow::ensure!(
            !functions.is_empty(),
            "no function of {name} in {}",
            r.out_file.display()
        );
        order::write(path, &functions, "bash bench/run.sh --order")?;
        println!(
            "code layout: {} functions written to {}",
            functions.len(),
            path.display()
        );
        return Ok(());
    }
    let mut figures = Vec::new();
    let mut last = None;
    for i in 0..a.repeat.max(1) {
        let mut runs = Vec::new();
        for n in [a.low, a.high] {
            eprintln!(
                "bench: callgrind run {}/{}: {n} tools/call (slow: valgrind)",
                i + 1,
                a.repeat.max(1)
            );
            let r = callgrind::run_once(&bin, &scratch.0, &up, n, true, false).await?;
            let kept = a.out_dir.join(format!("callgrind.{n}.{}.out", i + 1));
            std::fs::copy(&r.out_file, &kept)?;
            eprintln!("bench:   Ir = {} ({:.1} s)", r.ir, r.secs);
            runs.push(callgrind::Run {
                out_file: kept,
                ..r
            });
        }
        let figure = callgrind::per_call(&runs[0], &runs[1]);
        eprintln!("bench:   instructions per call: {figure:.0}");
        figures.push(figure);
        last = Some((runs.remove(0), runs.remove(0)));
    }
    let (low, high) = last.context("no run")?;
    if a.profile > 0 {
        eprintln!(
            "bench: profile runs ({} and {} calls, whole runs)",
            a.low, a.high
        );
        let low = callgrind::run_once(&bin, &scratch.0, &up, a.low, false, false).await?;
        let high = callgrind::run_once(&bin, &scratch.0, &up, a.high, false, false).await?;
        for r in [&low, &high] {
            std::fs::copy(
                &r.out_file,
                a.out_dir.join(format!("callgrind.{}.whole.out", r.calls)),
            )?;
        }
        let incl = profile::per_call(&low, &high, true)?;
        profile::print(
            "Ir per call, inclusive (function and its callees):",
            &incl,
            a.profile,
        );
        let own = profile::per_call(&low, &high, false)?;
        profile::print("Ir per call, self:", &own, a.profile);
        let areas = profile::by_area(&own);
        profile::print("Ir per call, self, by crate / module:", &areas, a.profile);
        let ours: Vec<_> = incl
            .iter()
            .filter(|(n, _)| profile::short(n).contains("switchboard::"))
            .cloned()
            .collect();
        profile::print(
            "Ir per call, inclusive, the gateway's own functions:",
            &ours,
            a.profile,
        );
    }
    let _ = up.proc.stop(Duration::from_secs(5)).await;
    let figure = runner::median(figures.clone());
    let spread = if figures.len() > 1 {
        let (min, max) = figures
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), f| (lo.min(*f), hi.max(*f)));
        Some((max - min) / figure)
    } else {
        None
    };
    if let Some(sp) = spread {
        println!(
            "callgrind determinism: {} runs, figures {:?}, spread {:.3}%",
            figures.len(),
            figures.iter().map(|f| f.round()).collect::<Vec<_>>(),
            sp * 100.0
        );
    }
    let doc = serde_json::json!({
        "instructions_per_call": figure.round(),
        "figures": figures.iter().map(|f| f.round()).collect::<Vec<_>>(),
        "spread": spread,
        "low": {"calls": low.calls, "ir": low.ir}, "high": {"calls": high.calls, "ir": high.ir},
    });
    report::write(&a.out_dir.join("callgrind.json"), &doc)?;
    if a.update_baseline {
        let note = "bash bench/run.sh --update-baseline; instructions per tools/call = (Ir(n_high) - Ir(n_low)) / (n_high - n_low)";
        report::write(
            &a.baseline,
            &callgrind::baseline_doc(figure, &low, &high, note),
        )?;
        println!(
            "instructions per tools/call: {figure:.0} (written to {})",
            a.baseline.display()
        );
        return Ok(());
    }
    layout_coverage(&a.order, &bin)?;
    match callgrind::read_baseline(&a.baseline)? {
        Some(base) => println!("{}", callgrind::gate(figure, &base)?),
        None => println!(
            "instructions per tools/call: {figure:.0} (no baseline at {})",
            a.baseline.display()
        ),
    }
    Ok(())
}

/// Below this share of its names in the binary, the code layout list is stale: the gate fails.
const LAYOUT_MIN_COVERAGE: f64 = 0.8;

/// How much of the code layout list the binary still has (names change with the compiler and
/// the dependencies).
fn layout_coverage(list: &std::path::Path, bin: &std::path::Path) -> Result<()> {
    if !list.exists() {
        return Ok(());
    }
    let (found, listed) = order::coverage(list, bin)?;
    let share = found as f64 / listed.max(1) as f64;
    println!(
        "code layout ({}): {found} of {listed} functions found in the binary ({:.1}%)",
        list.display(),
        share * 100.0
    );
    anyhow::ensure!(
        share >= LAYOUT_MIN_COVERAGE,
        "the code layout list is stale (under {:.0}% of its functions are in the binary): remake it with `bash bench/run.sh --order`",
        LAYOUT_MIN_COVERAGE * 100.0
    );
    Ok(())
}
