//! Child processes (gateway, nginx, upstreams) and what `/proc` says about them: CPU time
//! (utime + stime) and resident memory. Every child is killed when its handle is dropped, so
//! an error or ctrl-c never leaves anything listening.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running child; killed (SIGKILL) on drop unless [`Proc::stop`] ended it first.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    pid: u32,
}

impl Proc {
    /// Spawns `cmd` (stdin piped so that a child that watches it ends with us).
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Self> {
        cmd.kill_on_drop(true).stdin(Stdio::piped());
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("child without pid")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns whether it exited by itself.
    pub async fn stop(mut self, grace: Duration) -> bool {
        if !self.alive() {
            return true;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(_) => true,
            Err(_) => {
                eprintln!(
                    "bench: {} did not stop within {grace:?}; killing it",
                    self.name
                );
                let _ = self.child.kill().await;
                false
            }
        }
    }
}

/// Reads the first stdout line of `proc` that starts with `prefix` (e.g. `listening `).
pub async fn read_line_with(proc: &mut Proc, prefix: &str, within: Duration) -> Result<String> {
    let out = proc.child_mut().stdout.take().context("stdout not piped")?;
    let mut lines = BufReader::new(out).lines();
    let found = tokio::time::timeout(within, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await;
    // Keep draining so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    match found {
        Ok(Ok(Some(v))) => Ok(v),
        Ok(Ok(None)) => bail!("{} exited before printing `{prefix}`", proc.name),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => bail!("{} printed no `{prefix}` within {within:?}", proc.name),
    }
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_for_port(addr: SocketAddr, proc: &mut Proc, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if !proc.alive() {
            bail!("{} exited during start-up", proc.name);
        }
        if Instant::now() > deadline {
            bail!("{} is not listening on {addr} after {within:?}", proc.name);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port free right now (bound then released; the child binds it next).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(l.local_addr()?.port())
}

/// CPU time (user + system) of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
pub fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(read_ticks_per_second)
}

fn read_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident set size of a process, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// A `kB` figure of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, `RssFile`, …).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `taskset -c <cpu> <program>` when pinning is possible, else `<program>`.
pub fn pinned(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(c) if which("taskset") => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        _ => Command::new(program),
    }
}

/// Moves every thread of a running process to `cpu` (`taskset -a -p`).
pub fn move_to(pid: u32, cpu: usize) -> Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    anyhow::ensure!(status.success(), "taskset -a -p -c {cpu} {pid}: {status}");
    Ok(())
}

pub fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPUs online on the machine (`/sys/devices/system/cpu/online`, e.g. `0-1`), whatever this
/// process's own affinity is.
pub fn online_cpus() -> usize {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let count: usize = list
        .trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum();
    count.max(1)
}
