//! The binary: `check-config`, `keys create`, and `serve` with a graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::{Backend, Env};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

fn command(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .envs(env.env_pairs())
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.current_dir(env.dir.path());
    cmd
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_bad_fields() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/switchboard.toml");
    let out = Command::new(BIN)
        .args(["--config", shipped, "check-config"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config OK") && text.contains("127.0.0.1:8080"),
        "{text}"
    );

    let out = command(&env, &["check-config"])
        .env("SWITCHBOARD_STORE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.url"));

    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "[api]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = command(&env, &["--config", bad.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.lisen"));

    let out = command(
        &env,
        &["--config", "/definitely/missing.toml", "check-config"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn serve_prints_its_addresses_takes_cli_keys_and_stops_on_sigterm() {
    let env = Env::new(Backend::Sqlite).unwrap();
    let mut child = command(&env, &["serve"])
        .env("SWITCHBOARD_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let api = loop {
        let line = lines
            .next()
            .expect("gateway exited before listening")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "switchboard listening" {
            break v["fields"]["api"].as_str().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let out = command(
        &env,
        &[
            "keys",
            "create",
            "--user",
            "erin",
            "--workspace",
            "w",
            "--org",
            "o",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("sbk_"));
    let out = command(
        &env,
        &[
            "keys",
            "create",
            "--user",
            "bad user",
            "--workspace",
            "w",
            "--org",
            "o",
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("http://{api}/v1/connectors"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let resp = client
            .get(format!("http://{api}/v1/connectors"))
            .bearer_auth("sbk_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}
