//! `splitgate`: parse the command line, load the config, dispatch. Every
//! piece of behaviour lives in the library (`splitgate::run`,
//! `splitgate::admin_client`, `splitgate::seed`).

use std::process::ExitCode;

use clap::Parser;
use splitgate::cli::{Cli, Command, ConfigCommand};
use splitgate::run::{self, Listeners, Mode};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match splitgate_shared::config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { demo: false });
    let admin_url = cli.admin_url;
    if let Command::Config(ConfigCommand::Check) = command {
        println!(
            "ok: {} tenant(s), {:?} store",
            config.tenants.len(),
            config.store.backend
        );
        return ExitCode::SUCCESS;
    }
    splitgate_shared::telemetry::init(&config.log);
    // One crypto backend for every TLS connection, installed once.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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
    let result = runtime.block_on(async move {
        match command {
            Command::Serve { demo: true } => splitgate::seed::serve_demo(config).await,
            Command::Serve { demo: false } => run_until_signal(Mode::Serve, config).await,
            Command::Issuer => run_until_signal(Mode::Issuer, config).await,
            Command::Gateway => run_until_signal(Mode::Gateway, config).await,
            Command::DemoBackend { listen } => demo_backend(listen).await,
            admin => splitgate::admin_client::run(&config, admin_url.as_deref(), admin).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn demo_backend(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let backend = splitgate::demo::DemoBackend::start(listener)?;
    run::say(&format!(
        "splitgate demo backend listening: {}",
        backend.url()
    ));
    run::shutdown_signal().await;
    Ok(())
}

async fn run_until_signal(mode: Mode, config: splitgate_shared::Config) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config).await?;
    let running = run::start(mode, config, listeners).await?;
    run::announce(&running);
    run::shutdown_signal().await;
    tracing::info!("shutting down: draining open requests");
    running.stop().await;
    Ok(())
}
