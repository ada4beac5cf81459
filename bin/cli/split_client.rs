//! The command line of `split_client`, the split-message client and load tool (see
//! `chat::split`), shared by the binaries `split_client` and `chat-split-client`.

use std::io::{self, BufReader};
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use chat::split::session::PieceOptions;
use chat::split::{self, FloorConfig, InteractiveConfig, ReplayConfig, SplitError, StressConfig};

/// Sends every frame in random pieces: interactively, as the course's replay, or as a load test.
#[derive(Parser)]
#[command(
    name = "split_client",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    interactive: Interactive,
}

#[derive(Args)]
struct Interactive {
    /// The name to log in with.
    #[arg(required = true)]
    name: Option<String>,
    /// The server's host.
    #[arg(required = true)]
    host: Option<String>,
    /// The server's port.
    #[arg(required = true)]
    port: Option<String>,
    #[command(flatten)]
    pieces: Pieces,
}

#[derive(Args, Clone)]
struct Pieces {
    /// Seed of the random piece sizes and delays.
    #[arg(long)]
    seed: Option<u64>,
    /// The longest random pause between two pieces of a frame, in ms.
    #[arg(long, default_value_t = 0)]
    max_delay_ms: u64,
    /// The largest piece, in bytes.
    #[arg(long, default_value_t = 64)]
    max_piece: usize,
}

impl Pieces {
    fn options(&self) -> PieceOptions {
        PieceOptions {
            seed: self.seed,
            max_piece: self.max_piece,
            max_delay: Duration::from_millis(self.max_delay_ms),
        }
    }
}

#[derive(Subcommand)]
enum Mode {
    /// The course scenario: join split_messages, which must exist (create it from another
    /// client first), and send the tree message ten times; fails if the channel is missing.
    Replay {
        host: String,
        port: String,
        /// The pause between two messages, in ms.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        #[command(flatten)]
        pieces: Pieces,
    },
    /// The load test: many clients in one event loop, every delivery verified. Run it against a
    /// server of its own (--ephemeral --flood-rate 0): it writes its messages and names into
    /// the history, and it says when the server's flood limit held the senders back.
    Stress(Stress),
    /// The machine's floor: loopback connections to itself, one thread writing each round's
    /// frame to every member of a group but one, another reading them all; no server at all.
    Floor(Floor),
}

#[derive(Args)]
struct Floor {
    /// Loopback connections.
    #[arg(long, default_value_t = 500)]
    sockets: usize,
    /// Members of a group (a channel); each round writes to all of them but one.
    #[arg(long, default_value_t = 500)]
    group: usize,
    /// Rounds (incoming messages) per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Rounds in all.
    #[arg(long, default_value_t = 1000)]
    rounds: u64,
    /// Pin the writing thread to this CPU (the server's core in the benchmark).
    #[arg(long)]
    send_cpu: Option<usize>,
    /// Pin the reading thread to this CPU (the load tool's core).
    #[arg(long)]
    read_cpu: Option<usize>,
    /// Hard limit of the run, in seconds.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Also print the summary as one JSON line on stdout.
    #[arg(long)]
    json: bool,
}

fn floor(args: Floor) -> Result<bool, SplitError> {
    let cfg = FloorConfig {
        sockets: args.sockets,
        group: args.group,
        rate: args.rate,
        rounds: args.rounds,
        send_cpu: args.send_cpu,
        read_cpu: args.read_cpu,
        duration: Duration::from_secs(args.duration_secs),
    };
    let report = split::run_floor(&cfg)?;
    eprintln!("{report}");
    if args.json {
        println!("{}", report.to_json());
    }
    Ok(report.complete)
}

#[derive(Args)]
struct Stress {
    host: String,
    port: String,
    /// Reading clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of them send (default: all).
    #[arg(long)]
    senders: Option<usize>,
    /// Messages per sender.
    #[arg(long, default_value_t = 100)]
    messages: u32,
    /// Channels stress-0, stress-1, …; clients are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Messages per second per sender (0: as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The most messages per sender not yet received by every other member.
    #[arg(long, default_value_t = 32)]
    window: u32,
    /// Hard limit of the run, in seconds.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Seed of the random write sizes.
    #[arg(long)]
    seed: Option<u64>,
    /// After joining, hold the connections this many seconds, send nothing, and stop.
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Extra clients that join stress-0 and never read.
    #[arg(long, default_value_t = 0)]
    no_read: usize,
    /// The largest single write, in bytes.
    #[arg(long, default_value_t = 1024)]
    max_write: usize,
    /// Also print the summary as one JSON line on stdout.
    #[arg(long)]
    json: bool,
    /// The server's process id (same machine): report its CPU time per delivery and its
    /// memory per connection, read from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn stress(args: Stress) -> Result<bool, SplitError> {
    let port: u16 = args
        .port
        .parse()
        .map_err(|_| SplitError::Config(format!("invalid port {}", args.port)))?;
    let addr = (args.host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            SplitError::Unreachable(chat::utils_errors::unable_to_connect(
                &args.host, &args.port,
            ))
        })?;
    let cfg = StressConfig {
        clients: args.clients,
        senders: args.senders,
        messages: args.messages,
        channels: args.channels,
        rate: args.rate,
        window: args.window,
        duration: Duration::from_secs(args.duration_secs),
        seed: args.seed,
        idle: args.idle_secs.map(Duration::from_secs),
        no_read: args.no_read,
        max_write: args.max_write,
        progress: true,
        server_pid: args.server_pid,
        ..StressConfig::new(addr)
    };
    let report = split::run_stress(&cfg)?;
    eprintln!("{report}");
    if args.json {
        println!("{}", report.to_json());
    }
    Ok(report.passed())
}

/// Parses the command line and runs the client.
pub fn main() -> ExitCode {
    env_logger::init();
    let cli = Cli::parse();
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let result = match cli.mode {
        Some(Mode::Replay {
            host,
            port,
            interval_ms,
            pieces,
        }) => {
            let cfg = ReplayConfig {
                host,
                port,
                interval: Duration::from_millis(interval_ms),
                pieces: pieces.options(),
            };
            split::run_replay(&cfg, &mut stdout.lock(), &mut stderr.lock()).map(|()| true)
        }
        Some(Mode::Stress(args)) => stress(args),
        Some(Mode::Floor(args)) => floor(args),
        None => {
            let i = cli.interactive;
            let cfg = InteractiveConfig {
                name: i.name.unwrap_or_default(),
                host: i.host.unwrap_or_default(),
                port: i.port.unwrap_or_default(),
                pieces: i.pieces.options(),
            };
            let input = BufReader::new(io::stdin());
            split::run_interactive(&cfg, input, &mut stdout.lock(), &mut stderr.lock())
                .map(|()| true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // The user-visible text has been printed already.
        Err(SplitError::Unreachable(_) | SplitError::Disconnected(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("split_client: {e}");
            ExitCode::FAILURE
        }
    }
}
