use std::process::ExitCode;

use clap::Parser;
use control_server::cli::{Cli, Command};
use control_server::config::{Config, LogFormat, Settings};
use control_server::{admin, db::Db, server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = cli.common.common;
    match cli.command {
        Command::Serve(settings) => {
            let cfg = Config::resolve(&common, settings)?;
            telemetry::init_logging(cfg.log_format);
            server::run(cfg).await
        }
        Command::CheckConfig(settings) => {
            let cfg = Config::resolve(&common, settings)?;
            println!("{}", serde_json::to_string_pretty(&cfg.redacted())?);
            eprintln!("configuration is valid");
            Ok(())
        }
        Command::Openapi => {
            println!("{}", control_server::http::openapi_json());
            Ok(())
        }
        Command::Migrate => {
            let cfg = Config::resolve(&common, Settings::default())?;
            telemetry::init_logging(LogFormat::Text);
            let db = Db::connect(&cfg.database_url).await?;
            db.migrate().await?;
            eprintln!("migrations applied ({})", db.backend().as_str());
            db.close().await;
            Ok(())
        }
        Command::Admin { command } => {
            let cfg = Config::resolve(&common, Settings::default())?;
            let db = Db::connect(&cfg.database_url).await?;
            db.migrate().await?;
            let result = admin::run(&db, &cfg, command).await;
            db.close().await;
            result
        }
    }
}
