//! Scenario 7, in process: vault seal and open of a credential-sized secret, and the sealed
//! MCP session id check the relay does on every request (open + ownership check).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use switchboard::gateway::{SealedSessionId, SessionClaims};
use switchboard::identity::Principal;
use switchboard::vault::crypto::{KEY_LEN, SealingKey};
use switchboard::vault::{RecordIdentity, Vault};

/// Operations per second of each operation.
#[derive(Debug, Clone)]
pub struct VaultFigures {
    pub seal_per_s: f64,
    pub open_per_s: f64,
    pub session_check_per_s: f64,
}

impl VaultFigures {
    pub fn to_json(&self) -> Value {
        json!({
            "seal_per_s": self.seal_per_s.round(),
            "open_per_s": self.open_per_s.round(),
            "session_check_per_s": self.session_check_per_s.round(),
            "seal_ns": (1e9 / self.seal_per_s).round(),
            "open_ns": (1e9 / self.open_per_s).round(),
            "session_check_ns": (1e9 / self.session_check_per_s).round(),
        })
    }
}

/// Runs `op` in batches for about `for_how_long`; returns calls per second.
fn rate(for_how_long: Duration, mut op: impl FnMut() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < for_how_long {
        for _ in 0..256 {
            op()?;
        }
        n += 256;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

pub fn run(each: Duration) -> Result<VaultFigures> {
    let vault = Vault::new(vec![SealingKey::new(Some("bench"), &[7; KEY_LEN])])
        .context("building the vault")?;
    let owner = RecordIdentity::credential_secrets("0190c5d3-bench-credential");
    let secret =
        json!({"bearer_token": "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "headers": {}});
    let plain = serde_json::to_vec(&secret)?;
    let seal_per_s = rate(each, || {
        std::hint::black_box(vault.seal(std::hint::black_box(&plain), &owner));
        Ok(())
    })?;
    let blob = vault.seal(&plain, &owner);
    let open_per_s = rate(each, || {
        let opened = vault.open(std::hint::black_box(&blob), &owner)?;
        std::hint::black_box(opened);
        Ok(())
    })?;

    let claims = SessionClaims {
        c: "0190c5d3-7a2b-7c3d-8e4f-5a6b7c8d9e0f".into(),
        s: "bench-session-0".into(),
        k: Some("0190c5d3-7a2b-7c3d-8e4f-000000000001".into()),
        u: "admin".into(),
        w: "default".into(),
        o: "default".into(),
        t: 1_700_000_000,
    };
    let principal = Principal {
        user_id: "admin".into(),
        workspace_id: "default".into(),
        org_id: "default".into(),
        is_admin: true,
    };
    let token = SealedSessionId::seal(&vault, &claims);
    let session_check_per_s = rate(each, || {
        let c = SealedSessionId::open(&vault, std::hint::black_box(&token))
            .context("the sealed session id does not open")?;
        anyhow::ensure!(c.belongs_to(&principal, &claims.c), "foreign session");
        Ok(())
    })?;
    Ok(VaultFigures {
        seal_per_s,
        open_per_s,
        session_check_per_s,
    })
}
