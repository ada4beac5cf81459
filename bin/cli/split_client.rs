//! The command line of `split_client`, the split-message client and load tool (see
//! `chat::split`), shared by the binaries `split_client` and `chat-split-client`.

use std::io::{self, BufReader};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use chat::split::session::PieceOptions;
use chat::split::stress::{Placement, Proto, Shard, Target, Transport};
use chat::split::{
    self, FloorConfig, InteractiveConfig, RegfloodConfig, ReplayConfig, SplitError, StressConfig,
};

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
    /// Chat round trips through a flood of registrations: two bystanders in one channel
    /// measure their round trips, first alone (--rounds of them), then while --flooders
    /// connections send /register at once; every registration must be confirmed or refused
    /// with the busy text, and every bystander message arrive intact.
    Regflood(Regflood),
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

/// The protocol of `--proto`.
#[derive(Clone, Copy, ValueEnum)]
enum ProtoArg {
    /// The course's 200-byte frames.
    Frames,
    /// WebSocket: ws://HOST:PORT/ws (wss:// with --tls), one text message per frame.
    Ws,
    /// IRC: NICK/USER (then wait for 001), JOIN #channel, PRIVMSG #channel :text; channel C
    /// is #C.
    Irc,
}

/// The placement of `--placement`.
#[derive(Clone, Copy, ValueEnum)]
enum PlacementArg {
    /// Client i (sender or reader) on server i mod the number of servers.
    RoundRobin,
    /// Every sender on the first server, every other client on the second.
    Split,
}

/// TLS options, shared by the load modes.
#[derive(Args)]
struct TlsArgs {
    /// Speak TLS (1.2 or 1.3) on every connection, checking the server's certificate and
    /// that it names HOST.
    #[arg(long)]
    tls: bool,
    /// With --tls: trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
}

impl TlsArgs {
    fn transport(&self, proto: Proto) -> Result<Transport, SplitError> {
        let tls = if self.tls {
            let config = chat::client::tls::client_config(self.ca.as_deref())
                .map_err(|e| SplitError::Config(e.to_string()))?;
            Some(config)
        } else {
            None
        };
        Ok(Transport {
            proto,
            tls,
            origin: None,
        })
    }
}

/// Resolves HOST and PORT as given into a target (with the name TLS checks).
fn target(host: &str, port: &str, tls: bool) -> Result<Target, SplitError> {
    let port_num: u16 = port
        .parse()
        .map_err(|_| SplitError::Config(format!("invalid port {port}")))?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addr = (bare, port_num)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            SplitError::Unreachable(chat::utils_errors::unable_to_connect(host, port))
        })?;
    let tls_name = if tls {
        Some(chat::client::tls::server_name(host).map_err(|e| SplitError::Config(e.to_string()))?)
    } else {
        None
    };
    Ok(Target {
        addr,
        host: bare.to_owned(),
        tls_name,
    })
}

/// `HOST:PORT` (`[V6]:PORT` for an IPv6 address) into its two parts.
fn host_port(server: &str) -> Result<(&str, &str), SplitError> {
    server
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty())
        .ok_or_else(|| SplitError::Config(format!("--server {server}: expected HOST:PORT")))
}

#[derive(Args)]
struct Stress {
    /// The server's host (or give --server HOST:PORT, once or more).
    #[arg(required_unless_present = "server")]
    host: Option<String>,
    /// The server's port.
    #[arg(required_unless_present = "server")]
    port: Option<String>,
    /// A server, HOST:PORT; give it several times to spread the clients over several
    /// servers (nodes of one cluster), after HOST PORT if those are given too.
    #[arg(long, value_name = "HOST:PORT")]
    server: Vec<String>,
    /// How clients are spread over the servers.
    #[arg(long, value_enum, default_value = "round-robin")]
    placement: PlacementArg,
    /// The protocol every client speaks.
    #[arg(long, value_enum, default_value = "frames")]
    proto: ProtoArg,
    #[command(flatten)]
    tls: TlsArgs,
    /// With --proto ws: send this Origin in the upgrade instead of the page's own
    /// (http[s]://HOST:PORT), as a page of another site would; the server refuses it (403)
    /// unless its --web-origin allows it.
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
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
    /// Extra clients that join stress-0 and never read (past their TLS, WebSocket or IRC
    /// handshake, which they must read).
    #[arg(long, default_value_t = 0)]
    no_read: usize,
    /// The largest single write, in bytes.
    #[arg(long, default_value_t = 1024)]
    max_write: usize,
    /// Also print the summary as one JSON line on stdout.
    #[arg(long)]
    json: bool,
    /// The server's process id (same machine): report its CPU time per delivery and its
    /// memory per connection, read from /proc. Give it several times (the nodes of a cluster,
    /// its redis-server…) to add them up; each one's CPU time is reported too.
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Run one share of the layout, K of N (from 0): client i is run by the process with
    /// K = i mod N, each against its own server. Start N processes with the same options but
    /// K, and the same --barrier: they wait for each other there before sending (every
    /// member of every channel is in) and before leaving (every message has arrived
    /// everywhere). Each checks every delivery to its own clients, from every sender.
    #[arg(long, value_name = "K/N", requires = "barrier")]
    shard: Option<String>,
    /// With --shard: the directory (existing, empty, one per run) where the shards meet.
    #[arg(long, value_name = "DIR", requires = "shard")]
    barrier: Option<PathBuf>,
}

/// `K/N` of --shard.
fn shard(text: &str, barrier: PathBuf) -> Result<Shard, SplitError> {
    let bad = || SplitError::Config(format!("--shard {text}: expected K/N, K below N"));
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, of) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if index >= of {
        return Err(bad());
    }
    if !barrier.is_dir() {
        return Err(SplitError::Config(format!(
            "--barrier {}: not a directory",
            barrier.display()
        )));
    }
    Ok(Shard { index, of, barrier })
}

fn stress(args: Stress) -> Result<bool, SplitError> {
    let tls = args.tls.tls;
    let mut servers = Vec::new();
    if let (Some(host), Some(port)) = (&args.host, &args.port) {
        servers.push(target(host, port, tls)?);
    }
    for server in &args.server {
        let (host, port) = host_port(server)?;
        servers.push(target(host, port, tls)?);
    }
    let proto = match args.proto {
        ProtoArg::Frames => Proto::Frames,
        ProtoArg::Ws => Proto::Ws,
        ProtoArg::Irc => Proto::Irc,
    };
    let placement = match args.placement {
        PlacementArg::RoundRobin => Placement::RoundRobin,
        PlacementArg::Split => Placement::Split,
    };
    if servers.is_empty() {
        return Err(SplitError::Config("no server given".into()));
    }
    if args.origin.is_some() && proto != Proto::Ws {
        return Err(SplitError::Config("--origin needs --proto ws".into()));
    }
    let shard = match (args.shard.as_deref(), args.barrier) {
        (Some(text), Some(barrier)) => Some(shard(text, barrier)?),
        _ => None,
    };
    let cfg = StressConfig {
        servers,
        placement,
        transport: Transport {
            origin: args.origin,
            ..args.tls.transport(proto)?
        },
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
        server_pids: args.server_pid,
        shard,
    };
    let report = split::run_stress(&cfg)?;
    eprintln!("{report}");
    if args.json {
        println!("{}", report.to_json());
    }
    Ok(report.passed())
}

#[derive(Args)]
struct Regflood {
    host: String,
    port: String,
    /// Connections that log in with new names and send /register at once.
    #[arg(long, default_value_t = 4000)]
    flooders: usize,
    /// Bystander round trips measured before the flood (the baseline); during the flood
    /// they go on until every registration is answered.
    #[arg(long, default_value_t = 200)]
    rounds: u32,
    /// The pause between one bystander message's arrival and the next one's sending, in ms.
    #[arg(long, default_value_t = 1)]
    pause_ms: u64,
    /// The password of every registration (8 to 64 characters).
    #[arg(long, default_value = "flood-password")]
    password: String,
    /// Hard limit of the run, in seconds.
    #[arg(long, default_value_t = 120)]
    duration_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
    /// Also print the summary as one JSON line on stdout.
    #[arg(long)]
    json: bool,
    /// The server's process id (same machine): report its CPU time over the flood.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn regflood(args: Regflood) -> Result<bool, SplitError> {
    let cfg = RegfloodConfig {
        transport: args.tls.transport(Proto::Frames)?,
        flooders: args.flooders,
        rounds: args.rounds,
        pause: Duration::from_millis(args.pause_ms),
        password: args.password,
        duration: Duration::from_secs(args.duration_secs),
        progress: true,
        server_pid: args.server_pid,
        ..RegfloodConfig::new(target(&args.host, &args.port, args.tls.tls)?)
    };
    let report = split::run_regflood(&cfg)?;
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
        Some(Mode::Regflood(args)) => regflood(args),
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
