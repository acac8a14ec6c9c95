//! Interleaved repetitions: every repetition runs each target of a scenario in turn (direct,
//! gateway, nginx, …), so slow drifts of the machine hit all of them alike; the first
//! repetition of each target starts with the warm-up. Figures are medians over repetitions;
//! ratios are medians of per-repetition ratios to the direct target of the same repetition.
//!
//! Every repetition through the gateway also counts the connections the fast upstream
//! accepted meanwhile: the gateway keeps its upstream connections, so a repetition opens at
//! most one per load connection (the first) and a few for its own use; more fails the run
//! (a relay that stopped reusing connections still answers, only slower — a correctness
//! fault the timings alone would hide).

use anyhow::{Result, bail};
use serde_json::{Value, json};

use std::net::SocketAddr;

use crate::load::{self, Sample};
use crate::procs;
use crate::rig::Settings;
use crate::scenarios::{RatioTo, Scenario};

/// One repetition of one target.
#[derive(Debug, Clone)]
pub struct Rep {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us: Option<f64>,
}

impl Rep {
    fn of(s: &Sample) -> Self {
        Self {
            rps: s.rps(),
            p50_us: s.hist.quantile(0.50) as f64 / 1e3,
            p99_us: s.hist.quantile(0.99) as f64 / 1e3,
            cpu_us: s.cpu_us_per_req(),
        }
    }
}

/// The figures of one target of one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub title: String,
    pub target: String,
    pub conns: usize,
    pub reps: Vec<Rep>,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us: Option<f64>,
    /// Throughput relative to direct (see [`RatioTo`]).
    pub ratio: Option<f64>,
    /// Median per-repetition p50 minus the direct p50.
    pub added_p50_us: Option<f64>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Row {
    pub fn to_json(&self) -> Value {
        let r1 = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "scenario": self.scenario, "title": self.title, "target": self.target,
            "conns": self.conns, "rps": self.rps.round(), "p50_us": r1(self.p50_us),
            "p99_us": r1(self.p99_us), "cpu_us_per_req": self.cpu_us.map(r1),
            "ratio": self.ratio.map(|r| (r * 1000.0).round() / 1000.0),
            "added_p50_us": self.added_p50_us.map(r1),
            "reps": self.reps.iter().map(|r| json!({
                "rps": r.rps.round(), "p50_us": r1(r.p50_us), "p99_us": r1(r.p99_us),
                "cpu_us_per_req": r.cpu_us.map(r1)})).collect::<Vec<_>>(),
        })
    }
}

/// Runs one scenario; `s1_direct_rps` is scenario 1's direct median (for [`RatioTo::Scenario1Direct`]).
/// `upstream`: the fast upstream (whose accepted connections are counted).
pub async fn run(
    sc: &Scenario,
    s: &Settings,
    s1_direct_rps: Option<f64>,
    upstream: SocketAddr,
) -> Result<Vec<Row>> {
    let (Some(side), Some(home), true) = (s.side_cpu, s.gateway_cpu, sc.one_core) else {
        return measure(sc, s, s1_direct_rps, upstream).await;
    };
    let watched: Vec<u32> = sc.targets.iter().filter_map(|t| t.watch).collect();
    for &pid in &watched {
        procs::move_to(pid, side)?;
    }
    let rows = measure(sc, s, s1_direct_rps, upstream).await;
    for &pid in &watched {
        procs::move_to(pid, home)?;
    }
    rows
}

/// Upstream connections a repetition through the gateway may open beyond one per load
/// connection (its MCP session pool's, a listening stream's).
const SPARE_CONNECTIONS: u64 = 8;

async fn measure(
    sc: &Scenario,
    s: &Settings,
    s1_direct_rps: Option<f64>,
    upstream: SocketAddr,
) -> Result<Vec<Row>> {
    let reps = sc.reps.unwrap_or(s.reps).max(1);
    let mut samples: Vec<Vec<Rep>> = vec![Vec::new(); sc.targets.len()];
    eprintln!(
        "bench: [{}] {} — {reps} × {:?} per target",
        sc.id, sc.title, s.secs
    );
    for rep in 0..reps {
        for (i, t) in sc.targets.iter().enumerate() {
            let lead = if rep == 0 { s.warmup } else { s.ramp };
            let relayed = t.label.starts_with("gateway");
            let before = match relayed {
                true => Some(upstream_connections(upstream).await?),
                false => None,
            };
            let sample = load::run(&t.load, lead, s.secs, t.watch).await?;
            let mut opened = None;
            if let Some(before) = before {
                let n = upstream_connections(upstream).await? - before;
                opened = Some(n);
                let opened = n;
                let allowed = t.load.conns as u64 + SPARE_CONNECTIONS;
                if opened > allowed {
                    bail!(
                        "scenario {} ({}), target {}: the upstream accepted {opened} connections \
                         in one repetition of {} requests over {} connections (at most {allowed} \
                         expected): the gateway is not reusing its upstream connections",
                        sc.id,
                        sc.title,
                        t.label,
                        sample.requests,
                        t.load.conns
                    );
                }
            }
            if sample.errors > 0 || sample.requests == 0 {
                bail!(
                    "scenario {} ({}), target {}: {} errors, {} requests; first error: {}",
                    sc.id,
                    sc.title,
                    t.label,
                    sample.errors,
                    sample.requests,
                    sample.first_error.as_deref().unwrap_or("none")
                );
            }
            let r = Rep::of(&sample);
            eprintln!(
                "bench:   rep {}/{reps} {:<20} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs{}",
                rep + 1,
                t.label,
                r.rps,
                r.p50_us,
                r.p99_us,
                r.cpu_us
                    .map(|c| format!("  cpu {c:.1} µs/req"))
                    .unwrap_or_default()
                    + &opened
                        .map(|n| format!("  upstream conns +{n}"))
                        .unwrap_or_default()
            );
            samples[i].push(r);
        }
    }
    let direct = sc.targets.iter().position(|t| t.label == "direct");
    let mut rows = Vec::new();
    for (i, t) in sc.targets.iter().enumerate() {
        let reps_i = &samples[i];
        let pick = |f: fn(&Rep) -> f64| median(reps_i.iter().map(f).collect());
        let cpus: Vec<f64> = reps_i.iter().filter_map(|r| r.cpu_us).collect();
        let (ratio, added) = match (sc.ratio_to, direct) {
            (_, Some(d)) if d == i => (None, None),
            (RatioTo::OwnDirect, Some(d)) => {
                let pairs = reps_i.iter().zip(&samples[d]);
                let ratio = median(pairs.clone().map(|(a, b)| a.rps / b.rps).collect());
                let added = median(pairs.map(|(a, b)| a.p50_us - b.p50_us).collect());
                (Some(ratio), Some(added))
            }
            (RatioTo::Scenario1Direct, _) => (s1_direct_rps.map(|d| pick(|r| r.rps) / d), None),
            (RatioTo::OwnDirect, None) => (None, None),
        };
        rows.push(Row {
            scenario: sc.id.to_owned(),
            title: sc.title.clone(),
            target: t.label.to_owned(),
            conns: t.load.conns,
            rps: pick(|r| r.rps),
            p50_us: pick(|r| r.p50_us),
            p99_us: pick(|r| r.p99_us),
            cpu_us: (!cpus.is_empty()).then(|| median(cpus)),
            ratio,
            added_p50_us: added,
            reps: reps_i.clone(),
        });
    }
    Ok(rows)
}

/// Connections the fast upstream has accepted since it started.
async fn upstream_connections(upstream: SocketAddr) -> Result<u64> {
    crate::memory::upstream_stat(upstream, "connections").await
}

#[cfg(test)]
mod tests {
    #[test]
    fn medians() {
        assert_eq!(super::median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(super::median(Vec::new()).is_nan());
    }
}
