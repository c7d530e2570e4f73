//! Command-line interface: argument parsing, logging, and one module per command.

mod info;
mod magnet;
mod mount;
mod port_choice;
mod progress;
mod remote;
mod serve;
mod setup;
mod signals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rivulet_core::metainfo::Metainfo;

#[derive(Parser)]
#[command(
    name = "rivulet",
    version,
    about = "BitTorrent engine that mounts a torrent as a directory"
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress display.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a .torrent file (or a magnet link, once its metadata is fetched) holds.
    Info {
        /// The .torrent file, or a magnet link.
        torrent: PathBuf,
        /// Also write the .torrent to this file (for a magnet link: its fetched metadata).
        #[arg(long)]
        save: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Download a torrent into a directory; exits 0 once every piece is verified.
    Download {
        /// The .torrent file, or a magnet link.
        torrent: PathBuf,
        /// Directory the torrent's files are written under.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Keep seeding after the download completes, until interrupted.
        #[arg(long)]
        seed: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Serve a complete copy of a torrent's data; refuses data that is absent or does not verify.
    Seed {
        /// The .torrent file.
        torrent: PathBuf,
        /// Directory holding the torrent's files (as `download --output` made them).
        #[arg(short, long)]
        data: PathBuf,
        /// Download what is absent or does not verify, instead of refusing to start.
        #[arg(long)]
        download_missing: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Mount torrents as a read-only directory; files download as they are read.
    #[command(override_usage = "rivulet mount [OPTIONS] [SOURCE]... <MOUNTPOINT>")]
    Mount(mount::MountArgs),
    /// Run a session with an HTTP API, file streaming and a web page, until interrupted.
    Serve {
        /// Directory the torrents' files are downloaded into; the added .torrent files are
        /// kept in its .rivulet/torrents, so a restart offers the same torrents.
        #[arg(long)]
        data: PathBuf,
        /// Address of the HTTP API and web page; any address but loopback needs --token.
        /// [default: 127.0.0.1:7881, or the next free port if another rivulet has it]
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Access token every HTTP request must carry (Authorization: Bearer TOKEN, or
        /// ?token=TOKEN).
        #[arg(long)]
        token: Option<String>,
        /// Also show every torrent of the session under this mount point (an existing empty
        /// directory), as `rivulet mount` would.
        #[arg(long)]
        mount: Option<PathBuf>,
        /// Add every .torrent in this folder, and those dropped into it later; one deleted
        /// from it is removed (its data kept unless --delete-removed).
        #[arg(long, value_name = "DIR")]
        watch: Option<PathBuf>,
        /// Delete a torrent's downloaded data when its file leaves the watch folder.
        #[arg(long, requires = "watch")]
        delete_removed: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Add a .torrent file or a magnet link to a running `rivulet serve`.
    Add {
        /// The .torrent file, or a magnet link.
        torrent: PathBuf,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// List the torrents of a running `rivulet serve`.
    List {
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// Pause a torrent of a running `rivulet serve`.
    Pause {
        /// Its info-hash, or the start of it.
        hash: String,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// Resume a paused torrent of a running `rivulet serve`.
    Resume {
        /// Its info-hash, or the start of it.
        hash: String,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// Remove a torrent from a running `rivulet serve`; its data stays unless --delete-data.
    Remove {
        /// Its info-hash, or the start of it.
        hash: String,
        /// Also delete the torrent's downloaded files.
        #[arg(long)]
        delete_data: bool,
        #[command(flatten)]
        remote: remote::RemoteArgs,
    },
    /// List the available plugins, built-in and from plugin_dirs.
    Plugins {
        /// Config file whose plugin_dirs are searched (default: as for the other commands).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Options shared by every command that runs the engine.
#[derive(Args, Clone, Default)]
pub struct EngineArgs {
    /// Config file (default: $XDG_CONFIG_HOME/rivulet/config.toml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to accept peers on, e.g. 0.0.0.0:6881 (port 0: any free port). Default
    /// 0.0.0.0:6881, or the next free port when another program holds it. A specific IP (a VPN,
    /// one interface) is also where peer connections, tracker announces and the DHT leave from.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Write a JSON line per event (pieces, peers, trackers) to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Also connect to this peer (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<SocketAddr>,
    /// Piece picker plugin (rarest-first, sequential, streaming, or a loaded one).
    #[arg(long)]
    pub picker: Option<String>,
    /// Storage plugin (mmap, memory, or a loaded one).
    #[arg(long)]
    pub storage: Option<String>,
    /// Most peers connected at once, at least 1 (default: 50).
    #[arg(long)]
    pub max_peers: Option<usize>,
    /// Where resume data is kept, in a subfolder per data directory named by a hash of its
    /// path (default: $XDG_STATE_HOME/rivulet, else ~/.local/state/rivulet, else
    /// ./.rivulet-state when HOME is unset).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Join the DHT through this node, host:port (repeatable; default: the public routers,
    /// plus the nodes saved by the last run).
    #[arg(long = "dht-bootstrap", value_name = "ADDR")]
    pub dht_bootstrap: Vec<String>,
    /// Do not use the DHT to find peers.
    #[arg(long)]
    pub no_dht: bool,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        // fuser retries the unmount we already did when its session ends and warns that it
        // failed; its own comment calls that "not necessarily an error".
        0 => "warn,fuser::mnt=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn remote_run(args: remote::RemoteArgs, action: remote::Action) -> anyhow::Result<()> {
    rivulet_core::rt::block_on(remote::run(args, action))
}

/// Writes to stdout; a reader that went away (`rivulet info t | head -1`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to standard output"))
        }
        _ => Ok(()),
    }
}

/// Loads a torrent to download, seed, mount or describe.
pub fn load_torrent(path: &std::path::Path) -> anyhow::Result<Metainfo> {
    Metainfo::from_file(path).with_context(|| format!("cannot load {}", path.display()))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Info {
            torrent,
            save,
            engine,
        } => rivulet_core::rt::block_on(magnet::info(torrent, save, engine)),
        Command::Download {
            torrent,
            output,
            seed,
            engine,
        } => rivulet_core::rt::block_on(setup::download(torrent, output, seed, engine, cli.quiet)),
        Command::Seed {
            torrent,
            data,
            download_missing,
            engine,
        } => rivulet_core::rt::block_on(setup::seed(
            torrent,
            data,
            download_missing,
            engine,
            cli.quiet,
        )),
        Command::Mount(args) => rivulet_core::rt::block_on(mount::run(args, cli.quiet)),
        Command::Serve {
            data,
            http,
            token,
            mount,
            watch,
            delete_removed,
            engine,
        } => rivulet_core::rt::block_on(serve::serve(serve::ServeArgs {
            data,
            http,
            token,
            mount,
            watch,
            delete_removed,
            engine,
        })),
        Command::Add { torrent, remote } => remote_run(remote, remote::Action::Add(torrent)),
        Command::List { remote } => remote_run(remote, remote::Action::List),
        Command::Pause { hash, remote } => remote_run(remote, remote::Action::Pause(hash)),
        Command::Resume { hash, remote } => remote_run(remote, remote::Action::Resume(hash)),
        Command::Remove {
            hash,
            delete_data,
            remote,
        } => remote_run(remote, remote::Action::Remove { hash, delete_data }),
        Command::Plugins { config } => setup::plugins(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rivulet: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, outermost first. The library errors name their cause
/// in their own message as well as exposing it as a source, so a cause whose text is already
/// there is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let meta = Metainfo::from_bytes(b"not a torrent").unwrap_err();
        let e = anyhow::Error::new(meta).context("cannot load x.torrent");
        let line = one_line(&e);
        assert_eq!(
            line.matches("top level is not a dictionary").count(),
            1,
            "{line}"
        );
        assert!(
            line.starts_with("cannot load x.torrent: not a valid torrent"),
            "{line}"
        );
    }
}
