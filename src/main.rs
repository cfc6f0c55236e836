//! `meshroom-gw`: entry point. Parses the command line, sets up logging, dispatches.

use clap::Parser;
use meshroom_gw::cli::{self, Cli, Command};
use meshroom_gw::{config, gateway};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESHROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config_path = cli.config.as_deref();
    let code = match cli.command {
        Command::CheckConfig => cli::check_config(config_path),
        Command::Radio { action } => cli::radio(action, config_path),
        Command::Configfile => {
            print!("{}", config::TEMPLATE);
            0
        }
        Command::Generate { what } => cli::generate(what),
        command => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    std::process::exit(1);
                }
            };
            runtime.block_on(async move {
                match command {
                    Command::Run => match config::resolve(config_path) {
                        Err(e) => {
                            eprintln!("{e}");
                            cli::EXIT_CONFIG
                        }
                        Ok(loaded) => report(gateway::run(loaded).await),
                    },
                    Command::Status { url, json } => {
                        report(cli::status(url, json, config_path).await)
                    }
                    Command::Post {
                        room,
                        author,
                        url,
                        text,
                    } => report(cli::post(room, author, url, text, config_path).await),
                    Command::Tail { room, json } => {
                        report(meshroom_gw::tun::tail::run(config_path, &room, json).await)
                    }
                    Command::Client {
                        air,
                        name,
                        state,
                        action,
                    } => report(cli::client(air, name, state, action, config_path).await),
                    Command::CheckConfig
                    | Command::Configfile
                    | Command::Radio { .. }
                    | Command::Generate { .. } => 0,
                }
            })
        }
    };
    std::process::exit(code);
}

fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
