//! The load generator: a fixed number of keep-alive connections, each looping
//! request → complete response → check. A warm-up is run and thrown away; then only requests
//! that start and finish inside the measured window count. The CPU time of one watched
//! process (the gateway, nginx) is read at the window's edges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use hyper::StatusCode;

use crate::client::{Answer, Conn, Req};
use crate::hist::Histogram;
use crate::procs;

type Deep = dyn Fn(&Answer) -> Result<()> + Send + Sync;

/// What a correct answer looks like.
#[derive(Clone)]
pub struct Check {
    pub status: StatusCode,
    /// Bytes the body must contain (cheap: a substring search).
    pub contains: Option<Bytes>,
    /// Exact body length.
    pub len: Option<usize>,
    /// A full check (JSON-RPC parse), run on every answer in smoke mode and on the first
    /// answer of each connection otherwise.
    pub deep: Option<Arc<Deep>>,
}

impl Check {
    pub fn status(status: StatusCode) -> Self {
        Self {
            status,
            contains: None,
            len: None,
            deep: None,
        }
    }

    fn verify(&self, a: &Answer, deep: bool) -> Result<()> {
        if a.status != self.status {
            bail!(
                "HTTP {} (wanted {}): {}",
                a.status,
                self.status,
                String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
            );
        }
        if let Some(n) = self.len {
            if a.body.len() != n {
                bail!("body of {} bytes, wanted {n}", a.body.len());
            }
        }
        if let Some(needle) = &self.contains {
            if !a.body.windows(needle.len()).any(|w| w == &needle[..]) {
                bail!(
                    "body lacks {:?}: {}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
                );
            }
        }
        if deep {
            if let Some(f) = &self.deep {
                f(a)?;
            }
        }
        Ok(())
    }
}

/// One load: where, how many connections, what to send and how to check it.
#[derive(Clone)]
pub struct Load {
    pub addr: SocketAddr,
    pub conns: usize,
    pub req: Req,
    pub check: Check,
    /// Check every answer deeply (smoke mode).
    pub strict: bool,
}

/// The outcome of one measured window.
#[derive(Debug, Clone)]
pub struct Sample {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub hist: Histogram,
    /// CPU seconds the watched process used inside the window.
    pub cpu_secs: Option<f64>,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }

    /// Watched-process CPU per request, in microseconds.
    pub fn cpu_us_per_req(&self) -> Option<f64> {
        self.cpu_secs
            .filter(|_| self.requests > 0)
            .map(|c| c * 1e6 / self.requests as f64)
    }
}

const WARM: u8 = 0;
const RECORD: u8 = 1;
const STOP: u8 = 2;

struct WorkerOut {
    hist: Histogram,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn worker(load: Arc<Load>, phase: Arc<AtomicU8>) -> WorkerOut {
    let mut out = WorkerOut {
        hist: Histogram::default(),
        requests: 0,
        errors: 0,
        first_error: None,
    };
    let mut conn = match Conn::open(load.addr).await {
        Ok(c) => c,
        Err(e) => {
            out.errors = 1;
            out.first_error = Some(format!("{e:#}"));
            return out;
        }
    };
    let mut first = true;
    loop {
        let p0 = phase.load(Ordering::Relaxed);
        if p0 == STOP {
            break;
        }
        let t0 = Instant::now();
        let result = match conn.send(&load.req).await {
            Ok(a) => load.check.verify(&a, load.strict || first),
            Err(e) => Err(e),
        };
        let took = t0.elapsed();
        first = false;
        match result {
            Ok(()) => {
                if p0 == RECORD && phase.load(Ordering::Relaxed) == RECORD {
                    out.hist.record(took.as_nanos() as u64);
                    out.requests += 1;
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
                break;
            }
        }
    }
    out
}

/// Runs `load` for `warmup` (discarded), then measures for `measure`.
pub async fn run(
    load: &Load,
    warmup: Duration,
    measure: Duration,
    watch: Option<u32>,
) -> Result<Sample> {
    let load = Arc::new(load.clone());
    let phase = Arc::new(AtomicU8::new(WARM));
    let tasks: Vec<_> = (0..load.conns)
        .map(|_| tokio::spawn(worker(load.clone(), phase.clone())))
        .collect();
    tokio::time::sleep(warmup).await;
    let cpu0 = watch.map(procs::cpu_ticks).transpose()?;
    let started = Instant::now();
    phase.store(RECORD, Ordering::Relaxed);
    tokio::time::sleep(measure).await;
    phase.store(STOP, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let cpu1 = watch.map(procs::cpu_ticks).transpose()?;
    let mut sample = Sample {
        requests: 0,
        errors: 0,
        first_error: None,
        secs,
        hist: Histogram::default(),
        cpu_secs: cpu0
            .zip(cpu1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / procs::ticks_per_second()),
    };
    for t in tasks {
        let out = t.await?;
        sample.hist.merge(&out.hist);
        sample.requests += out.requests;
        sample.errors += out.errors;
        if sample.first_error.is_none() {
            sample.first_error = out.first_error;
        }
    }
    Ok(sample)
}
