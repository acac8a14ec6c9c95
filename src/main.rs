//! The `switchboard` binary: CLI → config → telemetry → `App::build` → wait for a signal.

use clap::Parser;
use secrecy::ExposeSecret;
use switchboard::cli::{self, Cli, Command, KeysCommand, VaultCommand};
use switchboard::{App, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig => {
            println!("{}", cli::describe(&config));
            Ok(())
        }
        Command::Keys(KeysCommand::Create {
            user,
            workspace,
            org,
            admin,
        }) => {
            let key = cli::create_key(&config, &user, &workspace, &org, admin).await?;
            eprintln!(
                "API key for user `{user}` (workspace `{workspace}`, org `{org}`{}). It is shown only once:",
                if admin { ", admin" } else { "" }
            );
            println!("{key}");
            Ok(())
        }
        Command::Vault(VaultCommand::Rotate { no_new_key }) => {
            let report = cli::rotate(&config, !no_new_key).await?;
            println!("{report}");
            if report.unreadable.is_empty() {
                println!(
                    "every stored secret is under key {}; older keys can be removed once every replica runs with it",
                    report.primary
                );
                Ok(())
            } else {
                anyhow::bail!(
                    "{} record(s) could not be opened and were left as they are",
                    report.unreadable.len()
                )
            }
        }
        Command::Serve => {
            let _telemetry = switchboard::telemetry::init(&config.log, &config.telemetry);
            let bound = App::build(config).await?;
            if let Some(key) = bound.bootstrap_key() {
                eprintln!(
                    "\n================================================================\n\
                     Bootstrap admin API key (shown once, store it now):\n\n    {}\n\n\
                     Use it as `Authorization: Bearer <key>`; create more keys with\n\
                     `switchboard keys create`.\n\
                     ================================================================\n",
                    key.expose_secret()
                );
            }
            let trigger = bound.shutdown_trigger();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutdown signal received");
                trigger.trigger();
            });
            bound.run_until_stopped().await;
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
