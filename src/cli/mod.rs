//! The `meshroom-gw` command line: the clap definition and the dispatch. One file per
//! subcommand family: `config` (check-config, configfile), `status`, `post`, `http` (the small
//! HTTP client both use), `acl`, `tail`, `client` (the software MeshCore companion), `radio` and `probe`
//! (radio presets and probe), `generate` (man pages, completions). `main.rs` only parses and
//! dispatches.

pub mod acl;
pub mod client;
pub mod config;
pub mod generate;
pub mod http;
pub mod post;
pub mod probe;
pub mod radio;
pub mod status;
pub mod tail;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;

#[derive(Debug, Parser)]
#[command(
    name = "meshroom-gw",
    version,
    about = "MeshCore multi-room server for LoRa gateways, with rooms on a TUN device and federation",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: /etc/meshroom-gw/config.yaml, else the embedded default]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "MESHROOM_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (radio, rooms, TUN, federation, HTTP) until SIGTERM.
    Run,
    /// Show rooms, clients and peers of a running gateway.
    Status {
        /// Base URL of the gateway's HTTP side [default: from the configuration's http.listen]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for the gateway (to connect, then for its answer).
        #[arg(long, value_name = "SECONDS", default_value_t = http::DEFAULT_TIMEOUT_S, env = "MESHROOM_TIMEOUT")]
        timeout: f64,
    },
    /// Check the configuration file and exit (status 2 when it has errors).
    CheckConfig,
    /// Print a commented configuration template.
    Configfile,
    /// Post a message into a room of a running gateway (from this host).
    Post {
        /// Room name.
        #[arg(long)]
        room: String,
        /// Name shown as the author.
        #[arg(long)]
        author: Option<String>,
        /// Base URL of the gateway's HTTP side [default: from the configuration's http.listen]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Seconds to wait for the gateway (to connect, then for its answer).
        #[arg(long, value_name = "SECONDS", default_value_t = http::DEFAULT_TIMEOUT_S, env = "MESHROOM_TIMEOUT")]
        timeout: f64,
        /// The message.
        text: String,
    },
    /// Print a room's posts as they pass on the host: joins the room's multicast group on the
    /// TUN device (opening a private room's seal with the PSK from the configuration).
    Tail {
        /// Room name.
        #[arg(long)]
        room: String,
        /// Print each post as its JSON line.
        #[arg(long)]
        json: bool,
    },
    /// A software MeshCore companion on the simulated air: list rooms, log in, post, listen.
    Client {
        /// Directory of the simulated air [default: radio.air_dir of the configuration]
        #[arg(long, value_name = "DIR")]
        air: Option<PathBuf>,
        /// This client's name (shown in its adverts).
        #[arg(long, default_value = "client")]
        name: String,
        /// Where the client keeps its key and what it learnt
        /// [default: ~/.local/state/meshroom-gw/client-NAME]
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        #[command(subcommand)]
        action: client::ClientCommand,
    },
    /// List or edit a room's MeshCore access list (roles of radio keys) in the running gateway.
    Acl {
        /// Room name.
        room: String,
        /// Base URL of the gateway's HTTP side [default: from the configuration's http.listen]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Seconds to wait for the gateway (to connect, then for its answer).
        #[arg(long, value_name = "SECONDS", default_value_t = http::DEFAULT_TIMEOUT_S, env = "MESHROOM_TIMEOUT")]
        timeout: f64,
        #[command(subcommand)]
        action: Option<acl::AclCommand>,
    },
    /// Radio tools: bring-up diagnostics, presets.
    Radio {
        #[command(subcommand)]
        action: RadioCommand,
    },
    /// Write the manual pages, or print a shell completion script.
    // Visible on purpose: clap's completion generators list hidden subcommands anyway, and
    // `generate completions SHELL` is as useful to someone who installed with cargo.
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Debug, Subcommand)]
pub enum RadioCommand {
    /// Open the configured SPI/GPIO, reset the chip, read status, device errors and sync word,
    /// try a full bring-up, and explain what is wrong.
    Probe,
    /// List the board and region presets the `radio:` section accepts.
    Presets,
}

/// What `meshroom-gw generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write meshroom-gw.1 and one page per subcommand into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completion script for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Exit status of a configuration error.
pub const EXIT_CONFIG: i32 = ConfigError::EXIT_STATUS;

/// Runs the parsed command line; returns the process exit status.
pub fn dispatch(cli: Cli) -> i32 {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::CheckConfig => config::check_config(config_path),
        Command::Radio { action } => radio::radio(action, config_path),
        Command::Configfile => {
            print!("{}", crate::config::TEMPLATE);
            0
        }
        Command::Generate { what } => generate::generate(what),
        command => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return 1;
                }
            };
            runtime.block_on(async move {
                match command {
                    Command::Run => match crate::settings::load(config_path) {
                        Err(e) => {
                            eprintln!("{e}");
                            EXIT_CONFIG
                        }
                        Ok(prepared) => report(crate::gateway::run(prepared).await),
                    },
                    Command::Status { url, json, timeout } => {
                        report(status::status(url, json, config_path, timeout).await)
                    }
                    Command::Post {
                        room,
                        author,
                        url,
                        timeout,
                        text,
                    } => report(post::post(room, author, url, text, config_path, timeout).await),
                    Command::Tail { room, json } => {
                        report(tail::run(config_path, &room, json).await)
                    }
                    Command::Client {
                        air,
                        name,
                        state,
                        action,
                    } => report(client::client(air, name, state, action, config_path).await),
                    Command::Acl {
                        room,
                        url,
                        timeout,
                        action,
                    } => report(acl::acl(room, action, url, config_path, timeout).await),
                    Command::CheckConfig
                    | Command::Configfile
                    | Command::Radio { .. }
                    | Command::Generate { .. } => 0,
                }
            })
        }
    }
}

/// Exit status for a command's outcome: 0, or 1 with the error on stderr.
fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
