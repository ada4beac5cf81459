//! The outcome of a stress run: a summary for people and one JSON line for scripts.

use std::fmt;

use crate::split::histogram::Histogram;
use crate::split::stress::probe;

/// Latency percentiles, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Deliveries measured.
    pub samples: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: u64,
}

impl Latency {
    /// The percentiles as a JSON object.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"samples\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\"mean\":{}}}",
            self.samples, self.p50, self.p90, self.p99, self.p999, self.max, self.mean
        )
    }

    /// The percentiles of a histogram.
    pub fn of(h: &Histogram) -> Latency {
        Latency {
            samples: h.count(),
            p50: h.quantile(0.50),
            p90: h.quantile(0.90),
            p99: h.quantile(0.99),
            p999: h.quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// What the server process used, read from /proc when its pid was given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerUsage {
    /// CPU time (user + system, all threads) over the measured phase: the sending and the
    /// draining, or the idle hold; not the setup.
    pub cpu_secs: f64,
    /// Resident memory before the first connection, in KiB.
    pub rss_base_kib: u64,
    /// Resident memory at the end of the measured phase, every connection still open, in KiB.
    pub rss_kib: u64,
    /// With several processes given (nodes of a cluster, Redis…): each one's pid and CPU
    /// seconds over the same phase; `cpu_secs` and the memory are their sums.
    pub by_pid: Vec<(u32, f64)>,
}

impl ServerUsage {
    /// Server CPU per delivery, in ns.
    pub fn cpu_ns_per(&self, deliveries: u64) -> f64 {
        self.cpu_secs * 1e9 / (deliveries.max(1) as f64)
    }

    /// Resident memory added per connection, in bytes.
    pub fn rss_bytes_per(&self, connections: usize) -> f64 {
        self.rss_kib.saturating_sub(self.rss_base_kib) as f64 * 1024.0 / (connections.max(1) as f64)
    }
}

/// What a stress run did and found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StressReport {
    /// Reading clients.
    pub clients: usize,
    /// Of which send.
    pub senders: usize,
    /// Extra clients that never read.
    pub no_read: usize,
    /// Channels.
    pub channels: usize,
    /// Messages each sender had to send.
    pub messages_per_sender: u32,
    /// True for an idle run (connections held, no messages).
    pub idle: bool,
    /// Messages sent.
    pub messages_sent: u64,
    /// Deliveries a correct server makes.
    pub deliveries_expected: u64,
    /// Deliveries that arrived (first arrivals).
    pub deliveries_received: u64,
    /// Connecting, logging in and joining, in seconds.
    pub setup_secs: f64,
    /// From the first message to the last delivery (or the stop), in seconds.
    pub duration_secs: f64,
    /// Deliveries per second over `duration_secs`.
    pub deliveries_per_sec: f64,
    /// Send-to-receive latency.
    pub latency: Latency,
    /// The round trips of the responsiveness probe, a spare connection that asks the server a
    /// command while the senders send (`None` when idle, or when it could not connect).
    pub probe: Option<Latency>,
    /// The server held the senders back while it was free: its flood limit, most likely
    /// (see [`probe::held_back`]). Not a failure, but the figures measure the limit.
    pub throttled: bool,
    /// With `--rate`: how late each send was against its schedule (the load tool's own
    /// precision; `None` without a rate).
    pub send_lag: Option<Latency>,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Messages that arrived again at the same receiver.
    pub duplicates: u64,
    /// Messages that arrived after a later one from the same sender.
    pub reordered: u64,
    /// Frames of this run that were wrong in some byte.
    pub corrupt: u64,
    /// Reading clients the server disconnected.
    pub disconnects: u64,
    /// No-read clients whose departure (`has left`) was announced: the server dropped them.
    pub no_read_dropped: u64,
    /// Frames that were neither this run's messages nor join/leave notices.
    pub other_frames: u64,
    /// The run hit its duration limit.
    pub timed_out: bool,
    /// Deliveries stopped coming before the run was complete.
    pub stalled: bool,
    /// What the server used, when its pid was given.
    pub server: Option<ServerUsage>,
    /// How many servers the clients were spread over.
    pub servers: usize,
    /// How they were spread: `round-robin`, or `split` (senders on the first, the others on
    /// the second).
    pub placement: &'static str,
    /// The protocol: `frames`, `ws` or `irc`.
    pub proto: &'static str,
    /// Every connection inside TLS.
    pub tls: bool,
    /// With several servers: the latency of deliveries to a receiver on another server than
    /// the sender's (with shards: from a sender of another shard).
    pub cross_server_latency: Option<Latency>,
    /// With `--shard K/N`: (K, N). The counts of deliveries are then this process's: those
    /// to the clients it runs.
    pub shard: Option<(usize, usize)>,
    /// With a shard: how many of the layout's clients this process runs.
    pub local_clients: usize,
}

impl StressReport {
    /// True when every expected delivery arrived exactly once, in order, intact, and no
    /// reading client was disconnected.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.reordered == 0
            && self.corrupt == 0
            && self.disconnects == 0
            && self.deliveries_received == self.deliveries_expected
            && !self.timed_out
            && !self.stalled
    }

    /// The connections this process held (the memory per connection counts these).
    pub fn connections(&self) -> usize {
        match self.shard {
            Some(_) => self.local_clients + self.no_read,
            None => self.clients + self.no_read,
        }
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"clients\":{},\"senders\":{},\"no_read\":{},\"channels\":{},",
                "\"messages_per_sender\":{},\"idle\":{},\"messages_sent\":{},",
                "\"deliveries_expected\":{},\"deliveries_received\":{},",
                "\"setup_secs\":{:.3},\"duration_secs\":{:.3},\"deliveries_per_sec\":{:.0},",
                "\"latency_ns\":{},",
                "\"lost\":{},\"duplicates\":{},\"reordered\":{},\"corrupt\":{},",
                "\"disconnects\":{},\"no_read_dropped\":{},\"other_frames\":{},",
                "\"timed_out\":{},\"stalled\":{},\"send_lag_ns\":{},\"server\":{},",
                "\"probe_ns\":{},\"throttled\":{},",
                "\"servers\":{},\"placement\":\"{}\",\"proto\":\"{}\",\"tls\":{},",
                "\"cross_server_latency_ns\":{},\"shard\":{},\"local_clients\":{},",
                "\"passed\":{}}}"
            ),
            self.clients,
            self.senders,
            self.no_read,
            self.channels,
            self.messages_per_sender,
            self.idle,
            self.messages_sent,
            self.deliveries_expected,
            self.deliveries_received,
            self.setup_secs,
            self.duration_secs,
            self.deliveries_per_sec,
            self.latency.to_json(),
            self.lost,
            self.duplicates,
            self.reordered,
            self.corrupt,
            self.disconnects,
            self.no_read_dropped,
            self.other_frames,
            self.timed_out,
            self.stalled,
            self.send_lag_json(),
            self.server_json(),
            self.probe_json(),
            self.throttled,
            self.servers,
            self.placement,
            self.proto,
            self.tls,
            self.cross_server_latency
                .as_ref()
                .map_or_else(|| "null".into(), Latency::to_json),
            self.shard
                .map_or_else(|| "null".into(), |(k, n)| format!("\"{k}/{n}\"")),
            self.connections() - self.no_read,
            self.passed(),
        )
    }

    fn send_lag_json(&self) -> String {
        match &self.send_lag {
            None => "null".into(),
            Some(l) => format!("{{\"p50\":{},\"p99\":{},\"max\":{}}}", l.p50, l.p99, l.max),
        }
    }

    fn probe_json(&self) -> String {
        match &self.probe {
            None => "null".into(),
            Some(l) => format!(
                "{{\"samples\":{},\"p50\":{},\"p99\":{},\"max\":{}}}",
                l.samples, l.p50, l.p99, l.max
            ),
        }
    }

    fn server_json(&self) -> String {
        match &self.server {
            None => "null".into(),
            Some(s) => format!(
                concat!(
                    "{{\"cpu_secs\":{:.3},\"cpu_ns_per_delivery\":{:.1},",
                    "\"rss_base_kib\":{},\"rss_kib\":{},\"rss_bytes_per_connection\":{:.0},",
                    "\"cpu_secs_by_pid\":{{{}}}}}"
                ),
                s.cpu_secs,
                s.cpu_ns_per(self.deliveries_received),
                s.rss_base_kib,
                s.rss_kib,
                s.rss_bytes_per(self.connections()),
                s.by_pid
                    .iter()
                    .map(|(pid, secs)| format!("\"{pid}\":{secs:.3}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

/// A duration in ns, in a unit a person reads at a glance.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.3} s", ns as f64 / 1e9),
    }
}

impl fmt::Display for StressReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stress: {} clients ({} senders, {} no-read) in {} channel(s), {} messages per sender",
            self.clients, self.senders, self.no_read, self.channels, self.messages_per_sender
        )?;
        if self.servers > 1 || self.proto != "frames" || self.tls {
            writeln!(
                f,
                "  over:       {}{}, {} server(s){}",
                self.proto,
                if self.tls { " inside TLS" } else { "" },
                self.servers,
                match (self.servers, self.placement) {
                    (1, _) => "",
                    (_, "split") => ", senders on the first, every other client on the second",
                    _ => ", clients spread round-robin",
                }
            )?;
        }
        if let Some((k, n)) = self.shard {
            writeln!(
                f,
                "  shard:      {k} of {n}: {} of the {} clients here, the others in the other \
                 processes; deliveries counted to these",
                self.local_clients, self.clients
            )?;
        }
        writeln!(f, "  setup:      {:.3} s", self.setup_secs)?;
        if self.idle {
            writeln!(f, "  idle:       connections held, no messages sent")?;
        } else {
            writeln!(f, "  sent:       {} messages", self.messages_sent)?;
            writeln!(
                f,
                "  deliveries: {} of {} expected in {:.3} s: {:.0} deliveries/s",
                self.deliveries_received,
                self.deliveries_expected,
                self.duration_secs,
                self.deliveries_per_sec
            )?;
            let l = &self.latency;
            writeln!(
                f,
                "  latency:    p50 {}, p90 {}, p99 {}, p99.9 {}, max {} (mean {})",
                human_ns(l.p50),
                human_ns(l.p90),
                human_ns(l.p99),
                human_ns(l.p999),
                human_ns(l.max),
                human_ns(l.mean)
            )?;
            if let Some(c) = &self.cross_server_latency {
                writeln!(
                    f,
                    "  across:     p50 {}, p99 {}, max {} ({} deliveries to another server than \
                     the sender's)",
                    human_ns(c.p50),
                    human_ns(c.p99),
                    human_ns(c.max),
                    c.samples
                )?;
            }
            if self.throttled {
                let probe = self.probe.unwrap_or_default();
                writeln!(
                    f,
                    "  THROTTLED:  a message took {} (median) to arrive while the server answered \
                     a spare connection in {}: the server's flood limit (--flood-rate, \
                     --flood-burst) held the senders back, so these figures measure that limit, \
                     not the server. Load-test a server of its own, started with --ephemeral \
                     --flood-rate 0.",
                    human_ns(self.latency.p50),
                    human_ns(probe.p50)
                )?;
            } else if let Some(p) = &self.probe {
                if p.samples >= probe::MIN_SAMPLES {
                    writeln!(
                        f,
                        "  probe:      a spare connection's round trip p50 {}, max {} ({} \
                         samples): the senders were not held back",
                        human_ns(p.p50),
                        human_ns(p.max),
                        p.samples
                    )?;
                } else {
                    writeln!(
                        f,
                        "  probe:      {} round trip(s) of a spare connection: too few to tell \
                         whether the server held the senders back",
                        p.samples
                    )?;
                }
            }
            if let Some(lag) = &self.send_lag {
                writeln!(
                    f,
                    "  send lag:   p50 {}, p99 {}, max {} (behind the fixed-rate schedule)",
                    human_ns(lag.p50),
                    human_ns(lag.p99),
                    human_ns(lag.max)
                )?;
            }
        }
        writeln!(
            f,
            "  errors:     lost {}, duplicates {}, reordered {}, corrupt {}, disconnects {}",
            self.lost, self.duplicates, self.reordered, self.corrupt, self.disconnects
        )?;
        if self.no_read > 0 || self.other_frames > 0 {
            writeln!(
                f,
                "  other:      {} no-read clients dropped by the server, {} unexpected frames",
                self.no_read_dropped, self.other_frames
            )?;
        }
        if let Some(s) = &self.server {
            let connections = self.connections();
            if self.idle {
                writeln!(
                    f,
                    "  server:     {:.3} s CPU; RSS {} KiB -> {} KiB with {connections} \
                     connections ({:.0} bytes each)",
                    s.cpu_secs,
                    s.rss_base_kib,
                    s.rss_kib,
                    s.rss_bytes_per(connections)
                )?;
            } else {
                writeln!(
                    f,
                    "  server:     {:.3} s CPU ({:.0} ns per delivery); RSS {} KiB -> {} KiB",
                    s.cpu_secs,
                    s.cpu_ns_per(self.deliveries_received),
                    s.rss_base_kib,
                    s.rss_kib
                )?;
            }
            if s.by_pid.len() > 1 {
                let each: Vec<String> = s
                    .by_pid
                    .iter()
                    .map(|(pid, secs)| format!("{pid} {secs:.3} s"))
                    .collect();
                writeln!(f, "  by process: {}", each.join(", "))?;
            }
        }
        if self.timed_out {
            writeln!(f, "  stopped:    the duration limit was reached")?;
        }
        if self.stalled {
            writeln!(f, "  stopped:    deliveries stalled")?;
        }
        write!(
            f,
            "  result:     {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_report_passes_and_any_fault_fails() {
        let ok = StressReport {
            deliveries_expected: 10,
            deliveries_received: 10,
            ..Default::default()
        };
        assert!(ok.passed());
        assert!(ok.to_json().contains("\"passed\":true"));
        assert!(ok.to_string().ends_with("result:     PASS"));
        for bad in [
            StressReport {
                lost: 1,
                ..ok.clone()
            },
            StressReport {
                duplicates: 1,
                ..ok.clone()
            },
            StressReport {
                reordered: 1,
                ..ok.clone()
            },
            StressReport {
                corrupt: 1,
                ..ok.clone()
            },
            StressReport {
                disconnects: 1,
                ..ok.clone()
            },
            StressReport {
                deliveries_received: 9,
                ..ok.clone()
            },
            StressReport {
                timed_out: true,
                ..ok.clone()
            },
        ] {
            assert!(!bad.passed());
            assert!(bad.to_json().contains("\"passed\":false"));
        }
    }

    #[test]
    fn json_is_one_line_with_every_field() {
        let json = StressReport::default().to_json();
        assert!(!json.contains('\n'));
        assert!(json.starts_with("{\"clients\":0,") && json.ends_with('}'));
        for key in [
            "deliveries_per_sec",
            "\"p999\"",
            "no_read_dropped",
            "stalled",
            "\"server\":null",
            "\"probe_ns\":null",
            "\"throttled\":false",
            "\"servers\":0,\"placement\":\"\",\"proto\":\"\",\"tls\":false,",
            "\"cross_server_latency_ns\":null,\"shard\":null,\"local_clients\":0,\"passed\"",
        ] {
            assert!(json.contains(key), "{key}");
        }
        assert_eq!(json.matches('{').count(), json.matches('}').count());
    }

    #[test]
    fn server_usage_is_per_delivery_and_per_connection() {
        let report = StressReport {
            clients: 1000,
            deliveries_received: 2_000_000,
            server: Some(ServerUsage {
                cpu_secs: 0.5,
                rss_base_kib: 6000,
                rss_kib: 7000,
                by_pid: vec![(42, 0.5)],
            }),
            ..Default::default()
        };
        let json = report.to_json();
        assert!(json.contains(concat!(
            "\"server\":{\"cpu_secs\":0.500,\"cpu_ns_per_delivery\":250.0,",
            "\"rss_base_kib\":6000,\"rss_kib\":7000,\"rss_bytes_per_connection\":1024,",
            "\"cpu_secs_by_pid\":{\"42\":0.500}}"
        )));
        let text = report.to_string();
        assert!(
            text.contains(
                "server:     0.500 s CPU (250 ns per delivery); RSS 6000 KiB -> 7000 KiB"
            ),
            "{text}"
        );
        assert!(!text.contains("by process"), "{text}");
    }

    #[test]
    fn several_processes_add_up_and_are_listed() {
        let report = StressReport {
            clients: 10,
            deliveries_received: 1_000_000,
            server: Some(ServerUsage {
                cpu_secs: 0.75,
                rss_base_kib: 100,
                rss_kib: 200,
                by_pid: vec![(11, 0.5), (12, 0.25)],
            }),
            ..Default::default()
        };
        assert!(report
            .to_json()
            .contains("\"cpu_secs_by_pid\":{\"11\":0.500,\"12\":0.250}}"));
        let text = report.to_string();
        assert!(text.contains("(750 ns per delivery)"), "{text}");
        assert!(
            text.contains("  by process: 11 0.500 s, 12 0.250 s\n"),
            "{text}"
        );
    }

    #[test]
    fn a_shard_counts_its_own_connections() {
        let report = StressReport {
            clients: 30,
            local_clients: 10,
            shard: Some((1, 3)),
            server: Some(ServerUsage {
                cpu_secs: 0.1,
                rss_base_kib: 0,
                rss_kib: 10,
                by_pid: vec![(1, 0.1)],
            }),
            idle: true,
            ..Default::default()
        };
        let json = report.to_json();
        assert!(
            json.contains("\"rss_bytes_per_connection\":1024,"),
            "{json}"
        );
        assert!(
            json.contains("\"shard\":\"1/3\",\"local_clients\":10,"),
            "{json}"
        );
        let text = report.to_string();
        assert!(
            text.contains("  shard:      1 of 3: 10 of the 30 clients here"),
            "{text}"
        );
        assert!(
            text.contains("with 10 connections (1024 bytes each)"),
            "{text}"
        );
    }

    #[test]
    fn the_probe_and_the_throttling_verdict_are_reported() {
        let probe = Latency {
            samples: 20,
            p50: 25_000,
            p99: 90_000,
            max: 100_000,
            ..Default::default()
        };
        let throttled = StressReport {
            deliveries_expected: 10,
            deliveries_received: 10,
            latency: Latency {
                samples: 10,
                p50: 15_660_000,
                ..Default::default()
            },
            probe: Some(probe),
            throttled: true,
            ..Default::default()
        };
        assert!(throttled.passed(), "throttling is not a failure");
        let json = throttled.to_json();
        assert!(json.contains(
            "\"probe_ns\":{\"samples\":20,\"p50\":25000,\"p99\":90000,\"max\":100000},\
             \"throttled\":true,"
        ));
        let text = throttled.to_string();
        assert!(text.contains(
            "\n  THROTTLED:  a message took 15.66 ms (median) to arrive while the server answered \
             a spare connection in 25.0 µs: the server's flood limit"
        ));
        let free = StressReport {
            throttled: false,
            ..throttled.clone()
        };
        assert!(free.to_string().contains(
            "\n  probe:      a spare connection's round trip p50 25.0 µs, max 100.0 µs (20 \
             samples): the senders were not held back\n"
        ));
        let short = StressReport {
            probe: Some(Latency {
                samples: 2,
                ..probe
            }),
            ..free
        };
        assert!(short.to_string().contains(
            "\n  probe:      2 round trip(s) of a spare connection: too few to tell whether the \
             server held the senders back\n"
        ));
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_ns(850), "850 ns");
        assert_eq!(human_ns(12_345), "12.3 µs");
        assert_eq!(human_ns(1_234_567), "1.23 ms");
        assert_eq!(human_ns(2_500_000_000), "2.500 s");
    }
}
