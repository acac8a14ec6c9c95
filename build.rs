//! Release builds of the `switchboard` binary lay out the code it runs — start-up, set-up and
//! relayed calls, listed in `link/symbol-order.txt` — contiguously, so that it occupies as few
//! pages as possible (resident memory at start 13.1 → 9.2 MiB; decision 018). The list is
//! made by `bash bench/run.sh --order`, from the functions a callgrind run of the gateway
//! executed.
//!
//! Only where the linker understands `--symbol-ordering-file` (LLD; Rust's default linker on
//! x86_64 Linux since 1.90): a tiny program is linked with the option first, with the same
//! compiler, target and linker. Anywhere else the build goes on without it. Names the list has
//! and the binary does not (the list is stale) are skipped silently; the callgrind gate reports
//! how many still match.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=SWITCHBOARD_SYMBOL_ORDER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") != "release" || var("SWITCHBOARD_SYMBOL_ORDER") == "off" {
        return;
    }
    // A fuzzing build (coverage instrumentation) links no binary of ours.
    if var("CARGO_ENCODED_RUSTFLAGS").contains("sanitizer-coverage") {
        return;
    }
    let source = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("link/symbol-order.txt");
    if !source.exists() {
        return;
    }
    // The linker reads a copy in OUT_DIR, not the checkout's file: cargo keeps this script's
    // output for another checkout sharing the target dir (a CI cache) when the list there is
    // older than this run, and a path into a checkout since deleted would fail the link.
    let list = PathBuf::from(var("OUT_DIR")).join("symbol-order.txt");
    if std::fs::copy(&source, &list).is_err() {
        println!("cargo:warning=could not copy link/symbol-order.txt: code not ordered");
        return;
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", list.display()),
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    if !linker_takes(&args) {
        println!("cargo:warning=the linker does not take --symbol-ordering-file: code not ordered");
        return;
    }
    for a in args {
        println!("cargo:rustc-link-arg-bins={a}");
    }
}

/// Whether linking a tiny program with `args` works.
fn linker_takes(args: &[String]) -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let out = PathBuf::from(var("OUT_DIR"));
    let src = out.join("order_probe.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return false;
    }
    let mut cmd = Command::new(var("RUSTC"));
    cmd.arg("--target")
        .arg(var("TARGET"))
        .arg("--crate-type=bin")
        .arg("-o")
        .arg(out.join("order_probe"))
        .arg(&src);
    // The flags and linker cargo gives the real build.
    for flag in var("CARGO_ENCODED_RUSTFLAGS")
        .split('\u{1f}')
        .filter(|f| !f.is_empty())
    {
        cmd.arg(flag);
    }
    if let Ok(linker) = std::env::var("RUSTC_LINKER") {
        cmd.arg("-C").arg(format!("linker={linker}"));
    }
    for a in args {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
