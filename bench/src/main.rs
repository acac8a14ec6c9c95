//! The Switchboard benchmark harness (issue 8). `bench/run.sh` is the one command; this binary
//! is what it runs: `run` (the scenarios, a table and JSON), `callgrind` (the instruction gate),
//! and the upstreams it starts as child processes (`upstream`, `rmcp-upstream`).

mod callgrind;
mod client;
mod gate;
mod gateway;
mod hist;
mod load;
mod memory;
mod nginx;
mod order;
mod procs;
mod profile;
mod report;
mod rig;
mod rmcp_upstream;
mod runner;
mod scenarios;
mod upstream;
mod vaultbench;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "bench", about = "Switchboard benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the scenarios: a table on stdout, JSON in --out.
    Run(RunArgs),
    /// Count instructions per tools/call under callgrind and compare with the baseline.
    Callgrind(gate::GateArgs),
    /// The fast upstream (started by `run`).
    Upstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// The rmcp upstream (started by `run`).
    RmcpUpstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Args, Debug)]
pub struct Common {
    /// The gateway binary (default: `switchboard` beside this binary).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// The gateway's core (and nginx's); the rest runs on --side-cpu.
    #[arg(long, default_value_t = 0)]
    gateway_cpu: usize,
    #[arg(long, default_value_t = 1)]
    side_cpu: usize,
    /// Do not pin anything.
    #[arg(long)]
    no_pin: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// A short run that checks the harness: ~1 s per target, one repetition, every answer
    /// checked in full.
    #[arg(long)]
    smoke: bool,
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds measured per repetition and target.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Scenario 6: SSE streams held open.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    #[arg(long, default_value_t = 2_000)]
    keepalive_conns: usize,
    #[arg(long)]
    no_nginx: bool,
    #[arg(long)]
    no_rmcp: bool,
    /// Only these scenarios (comma-separated: 1,1c1,1c1s,2,3,4,5a,5b,rmcp,6,ka,7).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
}

impl Common {
    pub fn gateway_bin(&self) -> Result<PathBuf> {
        let bin = match &self.gateway_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("bench binary without a directory")?
                .join("switchboard"),
        };
        anyhow::ensure!(
            bin.exists(),
            "no gateway binary at {} (build it: cargo build --release)",
            bin.display()
        );
        Ok(bin)
    }

    pub fn cpus(&self) -> (Option<usize>, Option<usize>) {
        // The machine's cores, not this process's affinity (run.sh pins us to one).
        let cores = procs::online_cpus();
        if self.no_pin || cores < 2 || !procs::which("taskset") {
            (None, None)
        } else {
            (Some(self.gateway_cpu), Some(self.side_cpu))
        }
    }
}

/// Ends this process when its stdin closes (the parent that started it is gone).
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The upstreams end quietly on a signal: their parent is stopping them.
    let quiet = matches!(
        cli.command,
        Command::Upstream { .. } | Command::RmcpUpstream { .. }
    );
    let result = rt.block_on(async {
        tokio::select! {
            r = dispatch(cli.command) => r,
            () = interrupted() => match quiet {
                true => Ok(()),
                false => Err(anyhow::anyhow!("interrupted: stopping everything")),
            },
        }
    });
    // Dropping the runtime drops every child handle: the children are killed.
    drop(rt);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Upstream { listen } => upstream::serve(&listen).await,
        Command::RmcpUpstream { listen } => rmcp_upstream::serve(&listen).await,
        Command::Run(args) => run(args).await,
        Command::Callgrind(args) => gate::run(args).await,
    }
}

/// A scratch directory for this run, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("switchboard-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run(a: RunArgs) -> Result<()> {
    let (gateway_cpu, side_cpu) = a.common.cpus();
    let smoke = a.smoke;
    let s = rig::Settings {
        smoke,
        reps: if smoke { 1 } else { a.reps },
        secs: Duration::from_secs_f64(if smoke { 1.0 } else { a.secs }),
        warmup: Duration::from_secs_f64(if smoke { 0.3 } else { a.warmup }),
        ramp: Duration::from_secs_f64(if smoke { 0.1 } else { 0.5 }),
        conns: a.conns,
        streams: if smoke { a.streams.min(200) } else { a.streams },
        keepalive_conns: if smoke {
            a.keepalive_conns.min(100)
        } else {
            a.keepalive_conns
        },
        nginx: !a.no_nginx,
        rmcp: !a.no_rmcp,
        gateway_bin: a.common.gateway_bin()?,
        out: a.out.clone(),
        only: a.only.clone(),
        gateway_cpu,
        side_cpu,
    };
    let settings_json = serde_json::json!({
        "smoke": smoke, "reps": s.reps, "secs": s.secs.as_secs_f64(), "warmup": s.warmup.as_secs_f64(),
        "conns": s.conns, "streams": s.streams, "keepalive_conns": s.keepalive_conns,
        "gateway_cpu": gateway_cpu, "side_cpu": side_cpu, "nginx": s.nginx, "rmcp": s.rmcp,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    let env = report::environment();
    let scratch = Scratch::new("run")?;
    let mut results = report::Results::default();
    let rig = rig::Rig::start(&s, &scratch.0).await?;
    results.base_rss_kib = Some(rig.base_rss_kib);
    results.base_anon_kib = Some(rig.base_anon_kib);
    let outcome = measure(&rig, &s, &mut results).await;
    let up = rig.upstream.addr;
    let outcome = match outcome {
        Ok(()) => memory_and_vault(&s, &scratch.0, up, &mut results).await,
        Err(e) => Err(e),
    };
    rig.stop().await;
    outcome?;
    report::print(&results);
    report::write(&s.out, &report::to_json(&results, env, settings_json))?;
    eprintln!("bench: results written to {}", s.out.display());
    Ok(())
}

async fn measure(rig: &rig::Rig, s: &rig::Settings, results: &mut report::Results) -> Result<()> {
    let mut s1_direct = None;
    for sc in scenarios::all(rig, s)? {
        let rows = runner::run(&sc, s, s1_direct, rig.upstream.addr).await?;
        if sc.id == "1" {
            s1_direct = rows.iter().find(|r| r.target == "direct").map(|r| r.rps);
        }
        results.rows.extend(rows);
    }
    Ok(())
}

async fn memory_and_vault(
    s: &rig::Settings,
    dir: &std::path::Path,
    up: std::net::SocketAddr,
    results: &mut report::Results,
) -> Result<()> {
    if s.wants("ka") {
        eprintln!(
            "bench: [ka] memory per idle keep-alive connection ({})",
            s.keepalive_conns
        );
        results.keepalive = Some(memory::keepalive(s, dir, up).await?);
    }
    if s.wants("6") {
        results.streams = Some(memory::sse_streams(s, dir, up).await?);
    }
    if s.wants("7") {
        eprintln!("bench: [7] vault seal/open and sealed session id checks, in process");
        let each = Duration::from_millis(if s.smoke { 200 } else { 2000 });
        results.vault = Some(vaultbench::run(each)?);
    }
    Ok(())
}
