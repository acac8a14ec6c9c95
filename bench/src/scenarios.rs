//! The throughput scenarios of issue 8 as loads: what each target (direct to the upstream,
//! through the gateway, through nginx) is sent, and how its answers are checked.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::client::{self, Req};
use crate::gateway::{self, Gateway};
use crate::load::{Check, Load};
use crate::rig::{self, Rig, Settings};
use crate::upstream;

/// The text every `tools/call` echoes.
pub const ECHO: &str = "bench-echo-7f3a";
const CALL_ID: i64 = 7;

/// What a non-direct target is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatioTo {
    /// The `direct` target of the same scenario, repetition by repetition.
    OwnDirect,
    /// The median direct throughput of scenario 1.
    Scenario1Direct,
}

pub struct Target {
    pub label: &'static str,
    pub load: Load,
    /// The process whose CPU time is charged to the requests (gateway, nginx).
    pub watch: Option<u32>,
}

pub struct Scenario {
    pub id: &'static str,
    pub title: String,
    pub targets: Vec<Target>,
    pub ratio_to: RatioTo,
    /// Fewer repetitions than the run's (the realism run).
    pub reps: Option<usize>,
    /// Run with the watched processes moved onto the side core, beside the load generator and
    /// the upstream: every process on one core, so no message waits for another core to wake
    /// up (what a one-connection latency is made of on this VM, for any relay).
    pub one_core: bool,
}

/// The JSON-RPC `tools/call` of the echo tool.
pub fn tools_call_body() -> Value {
    json!({"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": ECHO}}})
}

/// A `tools/call` POST to an MCP endpoint.
pub fn tools_call(path: &str, bearer: &str, session: Option<&str>) -> Result<Req> {
    Req::new(Method::POST, path)
        .bearer(bearer)?
        .mcp(session)?
        .json(&tools_call_body())
}

/// 200, the echo in the body; deeply: the JSON-RPC response with our id and the echoed text.
pub fn tools_call_check() -> Check {
    Check {
        contains: Some(Bytes::from_static(ECHO.as_bytes())),
        deep: Some(Arc::new(|a: &client::Answer| {
            let msg = client::rpc_answer(a)?;
            if msg["id"] != json!(CALL_ID)
                || msg.pointer("/result/content/0/text") != Some(&json!(ECHO))
            {
                bail!("unexpected tools/call answer: {msg}");
            }
            Ok(())
        })),
        ..Check::status(StatusCode::OK)
    }
}

fn load(s: &Settings, addr: SocketAddr, conns: usize, req: Req, check: Check) -> Load {
    Load {
        addr,
        conns,
        req,
        check,
        strict: s.smoke,
    }
}

fn target(label: &'static str, load: Load, watch: Option<u32>) -> Target {
    Target { label, load, watch }
}

/// Scenarios 1 and 2 (and the one-connection and rmcp variants): `tools/call` over `/mcp`.
fn mcp_call(rig: &Rig, s: &Settings, sse: bool, conns: usize) -> Result<Vec<Target>> {
    let (up_path, connector, direct_sid, gw_sid) = if sse {
        (
            "/mcp-sse",
            rig::SSE,
            &rig.sessions.direct_sse,
            &rig.sessions.gateway_sse,
        )
    } else {
        (
            "/mcp",
            rig::JSON,
            &rig.sessions.direct_json,
            &rig.sessions.gateway_json,
        )
    };
    let up = rig.upstream.addr;
    let direct = tools_call(up_path, upstream::TOKEN, direct_sid.as_deref())?;
    let via_gw = tools_call(
        &Gateway::mcp_path(connector),
        gateway::KEY,
        gw_sid.as_deref(),
    )?;
    let check = tools_call_check();
    let mut t = vec![
        target(
            "direct",
            load(s, up, conns, direct.clone(), check.clone()),
            None,
        ),
        target(
            "gateway",
            load(s, rig.gateway.api, conns, via_gw, check.clone()),
            Some(rig.gateway.pid()),
        ),
    ];
    if let Some(n) = &rig.nginx {
        t.push(target(
            "nginx",
            load(s, n.addr, conns, direct, check.clone()),
            Some(n.pid()),
        ));
    }
    Ok(t)
}

/// Every throughput scenario the settings ask for.
pub fn all(rig: &Rig, s: &Settings) -> Result<Vec<Scenario>> {
    let mut out = Vec::new();
    let c = s.conns;
    if s.wants("1") {
        let mut targets = mcp_call(rig, s, false, c)?;
        let logged = tools_call(
            &Gateway::mcp_path(rig::JSON),
            gateway::KEY,
            rig.sessions.logged_json.as_deref(),
        )?;
        targets.push(target(
            "gateway+access-log",
            load(s, rig.logged.api, c, logged, tools_call_check()),
            Some(rig.logged.pid()),
        ));
        out.push(scenario(
            "1",
            format!("tools/call via /mcp, JSON, {c} conns"),
            targets,
        ));
    }
    if s.wants("1c1") {
        let t = mcp_call(rig, s, false, 1)?;
        out.push(scenario(
            "1c1",
            "tools/call via /mcp, JSON, 1 conn".into(),
            t,
        ));
    }
    if s.wants("1c1s") && s.side_cpu.is_some() {
        let t = mcp_call(rig, s, false, 1)?;
        out.push(Scenario {
            one_core: true,
            ..scenario(
                "1c1s",
                "tools/call via /mcp, JSON, 1 conn, all on one core".into(),
                t,
            )
        });
    }
    if s.wants("2") {
        let t = mcp_call(rig, s, true, c)?;
        out.push(scenario(
            "2",
            format!("tools/call via /mcp, SSE, {c} conns"),
            t,
        ));
    }
    if s.wants("3") {
        let req = Req::new(Method::GET, format!("/v1/connectors/{}/tools", rig::JSON))
            .bearer(gateway::KEY)?;
        let check = Check {
            contains: Some(Bytes::from_static(b"\"echo\"")),
            deep: Some(Arc::new(|a: &client::Answer| {
                let v = a.json()?;
                let first = v.get(0).and_then(|t| t.get("name")).context("no tool")?;
                anyhow::ensure!(first == "echo", "unexpected tools: {v}");
                Ok(())
            })),
            ..Check::status(StatusCode::OK)
        };
        let t = vec![target(
            "gateway",
            load(s, rig.gateway.api, c, req, check),
            Some(rig.gateway.pid()),
        )];
        out.push(Scenario {
            ratio_to: RatioTo::Scenario1Direct,
            ..scenario(
                "3",
                format!("GET /v1/connectors/{{ref}}/tools, warm cache, {c} conns"),
                t,
            )
        });
    }
    if s.wants("4") {
        let path = format!("/v1/connectors/{}/tools/echo/call", rig::JSON);
        let req = Req::new(Method::POST, path)
            .bearer(gateway::KEY)?
            .json(&json!({"arguments": {"text": ECHO}}))?;
        let check = Check {
            contains: Some(Bytes::from_static(ECHO.as_bytes())),
            ..Check::status(StatusCode::OK)
        };
        let t = vec![target(
            "gateway",
            load(s, rig.gateway.api, c, req, check),
            Some(rig.gateway.pid()),
        )];
        out.push(Scenario {
            ratio_to: RatioTo::Scenario1Direct,
            ..scenario(
                "4",
                format!("POST /v1/connectors/{{ref}}/tools/echo/call, {c} conns"),
                t,
            )
        });
    }
    for (id, size, label) in [("5a", 1024usize, "1 KiB"), ("5b", 1 << 20, "1 MiB")] {
        if s.wants(id) {
            let t = http_relay(rig, s, size)?;
            out.push(scenario(
                id,
                format!("/http relay, {label} body both ways, {c} conns"),
                t,
            ));
        }
    }
    if s.wants("rmcp") {
        if let Some(r) = &rig.rmcp {
            let direct = tools_call("/mcp", upstream::TOKEN, rig.sessions.rmcp_direct.as_deref())?;
            let via = tools_call(
                &Gateway::mcp_path(rig::RMCP),
                gateway::KEY,
                rig.sessions.rmcp_gateway.as_deref(),
            )?;
            let t = vec![
                target(
                    "direct",
                    load(s, r.addr, c, direct, tools_call_check()),
                    None,
                ),
                target(
                    "gateway",
                    load(s, rig.gateway.api, c, via, tools_call_check()),
                    Some(rig.gateway.pid()),
                ),
            ];
            out.push(Scenario {
                reps: Some(1),
                ..scenario(
                    "rmcp",
                    format!("scenario 1 against rmcp (JSON, stateless), {c} conns"),
                    t,
                )
            });
        }
    }
    Ok(out)
}

fn scenario(id: &'static str, title: String, targets: Vec<Target>) -> Scenario {
    Scenario {
        id,
        title,
        targets,
        ratio_to: RatioTo::OwnDirect,
        reps: None,
        one_core: false,
    }
}

/// Scenario 5: `POST` of `size` bytes echoed back by the upstream.
fn http_relay(rig: &Rig, s: &Settings, size: usize) -> Result<Vec<Target>> {
    let body: Bytes = (0..size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into();
    let req = |path: &str, bearer: &str| -> Result<Req> {
        let mut r = Req::new(Method::POST, path)
            .bearer(bearer)?
            .header("content-type", "application/octet-stream")?;
        r.body = body.clone();
        Ok(r)
    };
    let expected = body.clone();
    let check = Check {
        len: Some(size),
        deep: Some(Arc::new(move |a: &client::Answer| {
            anyhow::ensure!(a.body == expected, "the echoed body differs");
            Ok(())
        })),
        ..Check::status(StatusCode::OK)
    };
    let c = s.conns;
    let up = rig.upstream.addr;
    let gw_path = format!("/v1/connectors-gateway/{}/http/echo", rig::HTTP);
    let mut t = vec![
        target(
            "direct",
            load(s, up, c, req("/echo", upstream::TOKEN)?, check.clone()),
            None,
        ),
        target(
            "gateway",
            load(
                s,
                rig.gateway.api,
                c,
                req(&gw_path, gateway::KEY)?,
                check.clone(),
            ),
            Some(rig.gateway.pid()),
        ),
    ];
    if let Some(n) = &rig.nginx {
        let l = load(s, n.addr, c, req("/echo", upstream::TOKEN)?, check);
        t.push(target("nginx", l, Some(n.pid())));
    }
    Ok(t)
}
