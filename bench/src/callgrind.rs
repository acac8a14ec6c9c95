//! The instruction gate: the release gateway under `valgrind --tool=callgrind` (one Tokio
//! worker, fixed configuration, the fast upstream outside valgrind), sent N scenario-1
//! `tools/call` requests one after another over one connection with auth, connector lookup,
//! credential injection and sealed session checks all on. Counting covers only the calls
//! (counters zeroed and dumped through `callgrind_control`); two runs (N = low, N = high)
//! cancel what is left per run: instructions per call = (Ir(high) − Ir(low)) / (high − low).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::client::Conn;
use crate::gateway::{self, Gateway, Options};
use crate::rig::{self, Upstream};
use crate::scenarios::{self, ECHO};

/// One callgrind run.
#[derive(Debug, Clone)]
pub struct Run {
    pub calls: u64,
    pub ir: u64,
    pub out_file: PathBuf,
    pub secs: f64,
}

/// The `totals:` (or `summary:`) Ir of a callgrind output file.
pub fn total_ir(file: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let find = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    find("totals:")
        .or_else(|| find("summary:"))
        .with_context(|| format!("no totals in {}", file.display()))
}

/// Settings that keep the count the same run after run (measured: three runs within 0.04%
/// with them, 0.7–1.4% without): one store connection (with a pool, how many connections
/// get opened, each parsing the schema and preparing its statements, depends on timing); one
/// malloc arena and a deep per-thread cache (otherwise the work inside malloc depends on the
/// heap's layout, which depends on how threads interleaved). This makes allocation cheaper
/// than with glibc's defaults (~5% of the figure). Extra or different settings:
/// `SWITCHBOARD_BENCH_CALLGRIND_ENV="K=V,K=V"`.
fn determinism_env() -> Vec<(String, String)> {
    let mut env = vec![
        (
            "SWITCHBOARD_STORE_MAX_CONNECTIONS".to_owned(),
            "1".to_owned(),
        ),
        (
            "GLIBC_TUNABLES".to_owned(),
            "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=65535".to_owned(),
        ),
    ];
    if let Ok(extra) = std::env::var("SWITCHBOARD_BENCH_CALLGRIND_ENV") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once('=') {
                env.retain(|(key, _)| key != k);
                env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    env
}

/// The pause before each call.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// Warm-up calls before counting starts (the first connection, pooled session, caches).
const WARM_CALLS: u64 = 20;

/// `callgrind_control <flag> <pid>` (through vgdb: zero the counters, or dump them).
async fn control(flag: &str, pid: u32) -> Result<()> {
    let out = tokio::process::Command::new("callgrind_control")
        .arg(flag)
        .arg(pid.to_string())
        .output()
        .await
        .context("running callgrind_control")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {flag} {pid} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs the gateway under callgrind and counts the instructions of `calls` sequential
/// `tools/call` requests: counters are zeroed after start-up, set-up and a warm-up, and dumped
/// right after the last call, so start-up (e.g. clock calibration, whose cost depends on wall
/// time) and shutdown never enter the figure.
///
/// With `counted == false` nothing is zeroed: the file written at exit covers the whole run
/// (for the profile, whose per-function figures a dump taken mid-run would distort for the
/// functions active at that moment). `mangled`: function names as the linker knows them.
pub async fn run_once(
    bin: &Path,
    dir: &Path,
    up: &Upstream,
    calls: u64,
    counted: bool,
    mangled: bool,
) -> Result<Run> {
    let out_file = dir.join(format!("callgrind.{calls}.out"));
    let dump = dir.join(format!("callgrind.{calls}.out.1"));
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_file(&dump);
    let opts = Options {
        access_log: false,
        cpu: None,
        callgrind_out: Some(out_file.clone()),
        valgrind_args: if mangled {
            vec!["--demangle=no".to_owned()]
        } else {
            Vec::new()
        },
        extra_env: determinism_env(),
    };
    let started = Instant::now();
    let gw = Gateway::start(bin, dir, &format!("callgrind-{calls}"), &opts).await?;
    gw.add_connector(rig::JSON, "mcp", &format!("http://{}/mcp-paced", up.addr))
        .await?;
    let path = Gateway::mcp_path(rig::JSON);
    let sid = gateway::mcp_session(gw.api, &path, gateway::KEY).await?;
    let req = scenarios::tools_call(&path, gateway::KEY, sid.as_deref())?;
    let check = scenarios::tools_call_check();
    let mut conn = Conn::open(gw.api).await?;
    for i in 0..WARM_CALLS + calls {
        if i == WARM_CALLS && counted {
            control("--zero", gw.pid()).await?;
        }
        // Each call finds the gateway idle, as the previous one left it.
        tokio::time::sleep(PAUSE).await;
        let a = conn.send(&req).await?;
        if a.status != StatusCode::OK || !String::from_utf8_lossy(&a.body).contains(ECHO) {
            bail!(
                "call {i} under callgrind: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        if i == 0 {
            if let Some(deep) = &check.deep {
                deep(&a)?;
            }
        }
    }
    if counted {
        control("--dump", gw.pid()).await?;
    }
    drop(conn);
    if !gw.stop().await {
        bail!("the gateway under callgrind did not exit by itself");
    }
    let file = if counted { dump } else { out_file };
    let ir = total_ir(&file)?;
    Ok(Run {
        calls,
        ir,
        out_file: file,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The figure: instructions per call from a low and a high run.
pub fn per_call(low: &Run, high: &Run) -> f64 {
    (high.ir as f64 - low.ir as f64) / (high.calls - low.calls) as f64
}

/// Reads `baseline.json`.
pub fn read_baseline(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(
            serde_json::from_str(&t).with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The baseline document for `figure`.
pub fn baseline_doc(figure: f64, low: &Run, high: &Run, note: &str) -> Value {
    let env = crate::report::environment();
    json!({
        "instructions_per_call": figure.round(),
        "n_low": low.calls,
        "n_high": high.calls,
        "ir_low": low.ir,
        "ir_high": high.ir,
        "profile": "release",
        "rustc": env["rustc"],
        "commit": env["commit"],
        "gateway_sources_modified": env["gateway_sources_modified"],
        "measured": env["date"],
        "tolerance": 0.05,
        "note": note,
    })
}

/// Compares `figure` with the baseline: Err when more than `tolerance` above it.
pub fn gate(figure: f64, baseline: &Value) -> Result<String> {
    let base = baseline["instructions_per_call"]
        .as_f64()
        .context("baseline without instructions_per_call")?;
    let tolerance = baseline["tolerance"].as_f64().unwrap_or(0.05);
    let change = figure / base - 1.0;
    let line = format!(
        "instructions per tools/call: {figure:.0} now, {base:.0} in bench/baseline.json ({:+.2}%, limit +{:.0}%)",
        change * 100.0,
        tolerance * 100.0
    );
    let rustc = crate::report::environment()["rustc"].clone();
    if baseline["rustc"] != rustc {
        eprintln!(
            "bench: note: the baseline was measured with {} and this is {}; code generation may differ",
            baseline["rustc"], rustc
        );
    }
    if change > tolerance {
        bail!("callgrind gate FAILED: {line}");
    }
    if change < -tolerance {
        return Ok(format!(
            "{line}\nbench: well below the baseline: record the improvement with `bash bench/run.sh --update-baseline`"
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_totals_and_gates() {
        let dir = std::env::temp_dir().join(format!("bench-cg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cg.out");
        std::fs::write(
            &file,
            "events: Ir\nsummary: 1234\nfn=x\n1 2\ntotals: 1200\n",
        )
        .unwrap();
        assert_eq!(total_ir(&file).unwrap(), 1200);
        std::fs::remove_dir_all(&dir).unwrap();

        let base = json!({"instructions_per_call": 100000.0, "tolerance": 0.05});
        assert!(gate(104_999.0, &base).is_ok());
        assert!(gate(105_001.0, &base).is_err());
        assert!(gate(50_000.0, &base).unwrap().contains("well below"));
    }
}
