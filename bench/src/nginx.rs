//! nginx as the floor any reverse proxy pays: one process (`master_process off`, pinned like
//! the gateway), `proxy_pass` to the fast upstream over HTTP/1.1 keep-alive, no buffering
//! either way, no access log. Its own prefix and configuration in the scratch directory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::procs::{self, Proc};

#[derive(Debug)]
pub struct Nginx {
    pub proc: Proc,
    pub addr: SocketAddr,
}

fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
    upstream fast {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen};
        client_max_body_size 16m;
        location / {{
            proxy_pass http://fast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"#
    )
}

impl Nginx {
    /// Starts nginx in `dir` relaying to `upstream`.
    pub async fn start(dir: &Path, upstream: SocketAddr, cpu: Option<usize>) -> Result<Self> {
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix)?;
        let addr: SocketAddr = format!("127.0.0.1:{}", procs::free_port()?).parse()?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config(&prefix, addr, upstream))?;
        let bin = which_nginx().context("nginx is not installed (bench/run.sh installs it)")?;
        let mut cmd = procs::pinned(Path::new(&bin), cpu);
        cmd.arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("nginx", cmd)?;
        procs::wait_for_port(addr, &mut proc, Duration::from_secs(10))
            .await
            .with_context(|| {
                let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                format!("nginx error log:\n{log}")
            })?;
        Ok(Self { proc, addr })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

fn which_nginx() -> Option<String> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| (*p).to_owned())
}
