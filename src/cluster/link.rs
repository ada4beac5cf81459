//! The cluster link's two threads: the writer (claims, channel creations, events, presence,
//! heartbeats and the watch on the other nodes) and the reader (the event stream).
//!
//! Both reconnect by themselves. While Redis is away the writer keeps what this node must tell
//! (events, presence) in order and sends it once Redis is back; what needs an answer now (a
//! name claim, a channel creation) is answered "could not be asked" at once. On every
//! (re)connection the writer puts this node's state back (its heartbeat, names, presence and
//! the channels it knows) and hands the hub a fresh snapshot of the other nodes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Client, Connection, Value};

use super::{
    ClusterError, ClusterHandle, ClusterMsg, ClusterOp, Created, NodeId, RemoteUser, Wire, LEASE,
    QUEUE,
};

const EVENTS: &str = "chat:events";
const CHANNELS: &str = "chat:channels";
const CHANNEL_KEYS: &str = "chat:channel_keys";
/// The stream keeps about this many entries (a node away longer than that misses some, and
/// the snapshot it reads on reconnecting puts its view of presence right). An entry holds the
/// events one pipeline sent, [`ENTRY_BYTES`] at most: the stream's memory stays bounded.
const STREAM_LEN: usize = 20_000;
/// An entry's events take at most about this many bytes (one event may be longer alone).
const ENTRY_BYTES: usize = 16 * 1024;
/// How often the writer renews leases and looks for nodes that stopped renewing theirs.
const BEAT: Duration = Duration::from_millis(400);
/// How long one Redis command may take before the connection counts as lost.
const IO_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the reader's XREAD blocks at most.
const BLOCK_MS: u64 = 200;
/// Events sent in one pipeline at most.
const BATCH: usize = 512;

fn node_key(node: NodeId) -> String {
    format!("chat:node:{node}")
}

fn presence_key(node: NodeId) -> String {
    format!("chat:presence:{node}")
}

fn name_key(key: &str) -> String {
    format!("chat:name:{key}")
}

/// Creates a channel unless it exists or there are too many: the list's new length (at least
/// 1) when created, 0 when it exists, -1 when there are too many.
const CREATE_CHANNEL: &str = r"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('RPUSH', KEYS[1], ARGV[2])
";

/// Deletes a name's claim only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Renews claims (`KEYS[i]` holding `ARGV[i]`, the lease last), or makes them again if Redis
/// forgot them; returns the keys another node holds now.
const RENEW: &str = r"
local lease = ARGV[#KEYS + 1]
local lost = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if v == ARGV[i] then redis.call('PEXPIRE', key, lease)
  elseif not v then redis.call('SET', key, ARGV[i], 'PX', lease)
  else table.insert(lost, key) end
end
return lost
";

/// Claims renewed by one call of [`RENEW`] at most (Redis runs a script alone: it stays short).
const RENEW_CHUNK: usize = 500;
/// Names are renewed every this many beats (1.2 s, well inside [`LEASE`]); the node's own
/// heartbeat every beat.
const CLAIM_BEATS: u32 = 3;

/// Renews `claims` (key, value) in calls of [`RENEW_CHUNK`]: a node with 19,000 users makes
/// 38 calls, not 19,000 round trips.
fn renew_claims(
    conn: &mut Connection,
    claims: &[(String, String)],
    lease: u64,
) -> redis::RedisResult<()> {
    let script = redis::Script::new(RENEW);
    for chunk in claims.chunks(RENEW_CHUNK) {
        let mut call = script.prepare_invoke();
        for (key, value) in chunk {
            call.key(key).arg(value);
        }
        call.arg(lease);
        let lost: Vec<String> = call.invoke(conn)?;
        for key in lost {
            log::warn!("cluster: the name {key} was taken by another node while Redis was away");
        }
    }
    Ok(())
}

fn connect(client: &Client) -> redis::RedisResult<Connection> {
    let conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(conn)
}

/// What the writer and the reader share.
struct Shared {
    node: NodeId,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Bounded: when the loop falls behind, the reader waits (the stream keeps the events).
    msgs: SyncSender<ClusterMsg>,
    waker: Arc<mio::Waker>,
    /// The other nodes seen (in the snapshot or the stream), watched for a missing heartbeat.
    nodes: Mutex<HashSet<NodeId>>,
    /// How many operations wait in the backlog for Redis to come back; past [`QUEUE`] the
    /// loop's [`ClusterHandle::submit`] refuses, so that nothing it accepted is ever dropped.
    backlog: Arc<AtomicUsize>,
}

impl Shared {
    fn tell(&self, msg: ClusterMsg) {
        self.tell_all(std::iter::once(msg));
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cluster: cannot wake the event loop: {e}");
        }
    }

    /// Hands the loop several messages with one wake.
    fn tell_all(&self, msgs: impl Iterator<Item = ClusterMsg>) {
        let mut sent = false;
        for msg in msgs {
            match self.msgs.try_send(msg) {
                Ok(()) => sent = true,
                Err(TrySendError::Full(msg)) => {
                    // The loop is behind: wake it for what it has, then wait for room.
                    self.wake();
                    if self.msgs.send(msg).is_err() {
                        return;
                    }
                    sent = true;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if sent {
            self.wake();
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashSet<NodeId>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) fn start(
    url: &str,
    number: u64,
    waker: Arc<mio::Waker>,
    channels: Vec<String>,
) -> Result<ClusterHandle, ClusterError> {
    let err = |source| ClusterError::Connect {
        url: url.to_string(),
        source,
    };
    let client = Client::open(url).map_err(err)?;
    let mut conn = connect(&client).map_err(err)?;
    let node = claim_node(&mut conn, number)
        .map_err(err)?
        .ok_or(ClusterError::NoFreeNode)?;
    // Where the reader starts: the stream's newest entry now, before the snapshot is read, so
    // that nothing falls between them (what both see is applied twice, harmlessly).
    let start_id = last_id(&mut conn).map_err(err)?;
    log::info!("cluster: node {node} on {url}");
    let (ops_tx, ops_rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let (msgs_tx, msgs_rx) = mpsc::sync_channel(QUEUE);
    let up = Arc::new(AtomicBool::new(true));
    let backlog = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        node,
        up: up.clone(),
        stop: stop.clone(),
        msgs: msgs_tx,
        waker,
        nodes: Mutex::new(HashSet::new()),
        backlog: backlog.clone(),
    });
    let mut writer = Writer {
        client: client.clone(),
        next_no: 1,
        watch_after: Instant::now(),
        conn: Some(conn),
        shared: shared.clone(),
        value_prefix: format!("{node}:"),
        claims: HashMap::new(),
        presence: HashMap::new(),
        channels,
        backlog: VecDeque::new(),
        down_since: None,
        beats: 0,
    };
    writer.restore().map_err(err)?;
    let reader_shared = shared.clone();
    thread::Builder::new()
        .name("cluster-read".into())
        .spawn(move || read_stream(client, &reader_shared, start_id))
        .map_err(ClusterError::Spawn)?;
    thread::Builder::new()
        .name("cluster-write".into())
        .spawn({
            let queued = queued.clone();
            move || writer.run(&ops_rx, &queued)
        })
        .map_err(ClusterError::Spawn)?;
    Ok(ClusterHandle {
        node,
        ops: ops_tx,
        pending: std::cell::RefCell::new(Vec::new()),
        queued,
        msgs: msgs_rx,
        up,
        stop,
        backlog,
    })
}

/// The first node id from `number` on (wrapping at 1024) whose heartbeat no running node
/// holds, taken with SET NX so that two nodes starting at once cannot both have it.
fn claim_node(conn: &mut Connection, number: u64) -> redis::RedisResult<Option<NodeId>> {
    let lease = u64::try_from(LEASE.as_millis()).unwrap_or(4000);
    for k in 0..1024 {
        let Ok(node) = NodeId::try_from((number + k) % 1024) else {
            continue;
        };
        let taken: Option<String> = redis::cmd("SET")
            .arg(node_key(node))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(lease)
            .query(conn)?;
        if taken.is_some() {
            return Ok(Some(node));
        }
    }
    Ok(None)
}

/// True when some node renews its heartbeat in the cluster at `url`.
pub(super) fn others_alive(url: &str) -> Result<bool, ClusterError> {
    let err = |source| ClusterError::Connect {
        url: url.to_string(),
        source,
    };
    let client = Client::open(url).map_err(err)?;
    let mut conn = connect(&client).map_err(err)?;
    let keys = scan_keys(&mut conn, "chat:node:*").map_err(err)?;
    Ok(!keys.is_empty())
}

/// The keys matching `pattern`, by SCAN rather than KEYS: Redis holds a key per name, and
/// KEYS would stop it while it walks them all.
fn scan_keys(conn: &mut Connection, pattern: &str) -> redis::RedisResult<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut found = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)?;
        found.extend(keys);
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// The id of the stream's newest entry, or `0-0` when it is empty.
fn last_id(conn: &mut Connection) -> redis::RedisResult<String> {
    let v: Value = redis::cmd("XREVRANGE")
        .arg(EVENTS)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(conn)?;
    let id = match v {
        Value::Array(entries) => entries.into_iter().next().and_then(|e| match e {
            Value::Array(mut parts) if !parts.is_empty() => string(parts.swap_remove(0)),
            _ => None,
        }),
        _ => None,
    };
    Ok(id.unwrap_or_else(|| "0-0".to_string()))
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// The events of `run` (events numbered in a row; anything else is skipped) as stream entries:
/// (the first event's number, the events' bytes one after the other), as few as
/// [`ENTRY_BYTES`] allows (an event longer than that alone in its entry).
fn pack(run: &[Pending]) -> Vec<(u64, Vec<u8>)> {
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    for pending in run {
        let Pending::Event { no, bytes } = pending else {
            continue;
        };
        match entries.last_mut() {
            Some((_, body)) if body.len() + bytes.len() <= ENTRY_BYTES => {
                body.extend_from_slice(bytes);
            }
            _ => entries.push((*no, bytes.clone())),
        }
    }
    entries
}

/// The events of one entry (see [`xadd`]), in order.
fn decode_events(mut rest: &[u8]) -> postcard::Result<Vec<Wire>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (wire, tail) = postcard::take_from_bytes::<Wire>(rest)?;
        out.push(wire);
        rest = tail;
    }
    Ok(out)
}

fn string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn not_connected() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::NotConnected))
}

/// Adds one entry to `pipe`: its origin `o` (so that a reader skips its own node's events
/// without decoding them), the number `n` of its first event (the others follow in a row) and
/// the events `e`, each in postcard's encoding, one after the other.
fn xadd(pipe: &mut redis::Pipeline, node: NodeId, no: u64, events: &[u8]) {
    pipe.cmd("XADD")
        .arg(EVENTS)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_LEN)
        .arg("*")
        .arg("o")
        .arg(node)
        .arg("n")
        .arg(no)
        .arg("e")
        .arg(events)
        .ignore();
}

/// What the writer does, in order: an operation, or an event already numbered (its number
/// stays the same however often it is sent, so that readers drop a duplicate: a command that
/// timed out may have been carried out all the same).
enum Pending {
    Op(ClusterOp),
    Event { no: u64, bytes: Vec<u8> },
}

struct Writer {
    client: Client,
    /// The next event's number (per node; readers drop numbers they have seen).
    next_no: u64,
    /// Nodes are not declared gone before this (after a reconnection, the others need time
    /// to put their heartbeats back into a Redis that may have forgotten them).
    watch_after: Instant,
    conn: Option<Connection>,
    shared: Arc<Shared>,
    /// Claims hold `"{node}:{conn}"`.
    value_prefix: String,
    /// This node's names: key → its connection.
    claims: HashMap<String, u64>,
    /// This node's users, as its presence hash holds them.
    presence: HashMap<u64, RemoteUser>,
    /// The channels this node knows, in order (put back into Redis after a restart of it).
    channels: Vec<String>,
    /// What waits for Redis to come back, in order.
    backlog: VecDeque<Pending>,
    down_since: Option<Instant>,
    /// Beats so far (names are renewed every [`CLAIM_BEATS`]).
    beats: u32,
}

impl Writer {
    fn run(mut self, ops: &Receiver<Vec<ClusterOp>>, queued: &AtomicUsize) {
        let mut next_beat = Instant::now() + BEAT;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let wait = next_beat.saturating_duration_since(Instant::now());
            match ops.recv_timeout(wait) {
                Ok(mut batch) => {
                    while batch.len() < BATCH {
                        match ops.try_recv() {
                            Ok(more) => batch.extend(more),
                            Err(_) => break,
                        }
                    }
                    queued.fetch_sub(batch.len(), Ordering::Relaxed);
                    self.handle(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + BEAT;
                self.beat();
            }
        }
    }

    fn value(&self, conn: u64) -> String {
        format!("{}{conn}", self.value_prefix)
    }

    /// Does a batch of operations; on a failure of Redis, keeps what can wait.
    fn handle(&mut self, batch: Vec<ClusterOp>) {
        let mut run = Vec::new();
        for op in batch {
            log::trace!("cluster: {op:?}");
            // Keep this node's own picture whatever happens to Redis.
            match &op {
                ClusterOp::Presence { conn, user } => match user {
                    Some(u) => {
                        self.presence.insert(*conn, u.clone());
                    }
                    None => {
                        self.presence.remove(conn);
                    }
                },
                ClusterOp::Release { key, .. } => {
                    self.claims.remove(key);
                }
                ClusterOp::Publish(Wire::Channel { name, .. }) if !self.channels.contains(name) => {
                    self.channels.push(name.clone());
                }
                _ => {}
            }
            let pending = match op {
                ClusterOp::Publish(wire) => {
                    let no = self.next_no;
                    self.next_no += 1;
                    Pending::Event {
                        no,
                        bytes: postcard::to_allocvec(&wire).unwrap_or_default(),
                    }
                }
                op => Pending::Op(op),
            };
            // Events in a row go to Redis in one pipeline (one round trip for all of them):
            // at saturation the loop hands over hundreds at once.
            let live = self.conn.is_some() && self.backlog.is_empty();
            if live && matches!(pending, Pending::Event { .. }) {
                run.push(pending);
                continue;
            }
            self.send_events(&mut run);
            if self.conn.is_none() || !self.backlog.is_empty() {
                self.defer(pending);
                continue;
            }
            if let Err(e) = self.apply(&pending) {
                self.lost(&e);
                self.defer(pending);
            }
        }
        self.send_events(&mut run);
    }

    /// Sends `run` (events only, in order) in one pipeline; on a failure of Redis they all wait
    /// for it to come back (a resent event keeps its number, and readers drop what they saw).
    fn send_events(&mut self, run: &mut Vec<Pending>) {
        if run.is_empty() {
            return;
        }
        let node = self.shared.node;
        let sent = match self.conn.as_mut() {
            Some(conn) => {
                let mut pipe = redis::pipe();
                for (from, body) in pack(run) {
                    xadd(&mut pipe, node, from, &body);
                }
                pipe.query::<()>(conn)
            }
            None => Err(not_connected()),
        };
        if let Err(e) = sent {
            self.lost(&e);
            for pending in run.drain(..) {
                self.defer(pending);
            }
        }
        run.clear();
    }

    /// Redis is away: an operation that needs an answer now is answered so; the rest waits.
    fn defer(&mut self, op: Pending) {
        match op {
            Pending::Op(ClusterOp::Claim { conn, key }) => self.shared.tell(ClusterMsg::Claimed {
                conn,
                key,
                ok: None,
            }),
            Pending::Op(ClusterOp::CreateChannel { conn, name, .. }) => {
                self.shared.tell(ClusterMsg::ChannelCreated {
                    conn,
                    name,
                    outcome: Created::Failed,
                })
            }
            // Redis cannot be asked: this node's view, which has no such channel, is the answer.
            Pending::Op(ClusterOp::FindChannel { conn, asked, .. }) => {
                self.shared.tell(ClusterMsg::ChannelFound {
                    conn,
                    asked,
                    name: None,
                })
            }
            op => {
                // Bounded by submit's refusals (QUEUE waiting here, QUEUE in the channel).
                self.backlog.push_back(op);
                self.shared
                    .backlog
                    .store(self.backlog.len(), Ordering::Relaxed);
            }
        }
    }

    fn lost(&mut self, e: &redis::RedisError) {
        if self.down_since.is_none() {
            log::error!("cluster: lost Redis: {e}; serving this node's clients, reconnecting");
            self.down_since = Some(Instant::now());
        }
        self.shared.up.store(false, Ordering::Relaxed);
        self.conn = None;
    }

    fn apply(&mut self, pending: &Pending) -> redis::RedisResult<()> {
        let op = match pending {
            Pending::Op(op) => op,
            Pending::Event { no, bytes } => {
                let node = self.shared.node;
                let conn = self.conn.as_mut().ok_or_else(not_connected)?;
                let mut pipe = redis::pipe();
                xadd(&mut pipe, node, *no, bytes);
                return pipe.query::<()>(conn);
            }
        };
        let value = match op {
            ClusterOp::Claim { conn, .. }
            | ClusterOp::CreateChannel { conn, .. }
            | ClusterOp::Release { conn, .. } => self.value(*conn),
            _ => String::new(),
        };
        let node = self.shared.node;
        let lease = u64::try_from(LEASE.as_millis()).unwrap_or(4000);
        let conn = self.conn.as_mut().ok_or_else(not_connected)?;
        match op {
            ClusterOp::Claim { conn: c, key } => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(name_key(key))
                    .arg(&value)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease)
                    .query(conn)?;
                let ok = if set.is_some() {
                    true
                } else {
                    let holder: Option<String> =
                        redis::cmd("GET").arg(name_key(key)).query(conn)?;
                    holder.as_deref() == Some(value.as_str())
                };
                if ok {
                    self.claims.insert(key.clone(), *c);
                }
                self.shared.tell(ClusterMsg::Claimed {
                    conn: *c,
                    key: key.clone(),
                    ok: Some(ok),
                });
            }
            ClusterOp::Release { key, .. } => {
                let _: i64 = redis::Script::new(RELEASE)
                    .key(name_key(key))
                    .arg(&value)
                    .invoke(conn)?;
            }
            ClusterOp::CreateChannel {
                conn: c,
                name,
                key,
                max,
            } => {
                let r: i64 = redis::Script::new(CREATE_CHANNEL)
                    .key(CHANNELS)
                    .key(CHANNEL_KEYS)
                    .arg(key)
                    .arg(name)
                    .arg(*max)
                    .invoke(conn)?;
                // The list's new length on success: the channel's place is one before it.
                let outcome = match r {
                    1.. => {
                        self.channels.push(name.clone());
                        Created::Created {
                            pos: u64::try_from(r - 1).unwrap_or(0),
                        }
                    }
                    0 => Created::Exists,
                    _ => Created::TooMany,
                };
                self.shared.tell(ClusterMsg::ChannelCreated {
                    conn: *c,
                    name: name.clone(),
                    outcome,
                });
            }
            ClusterOp::FindChannel {
                conn: c,
                key,
                asked,
            } => {
                let name: Option<String> =
                    redis::cmd("HGET").arg(CHANNEL_KEYS).arg(key).query(conn)?;
                self.shared.tell(ClusterMsg::ChannelFound {
                    conn: *c,
                    asked: asked.clone(),
                    name,
                });
            }
            // Numbered and sent above.
            ClusterOp::Publish(_) => {}
            ClusterOp::Presence { conn: c, user } => {
                let key = presence_key(node);
                match user {
                    Some(u) => {
                        let json = serde_json::to_string(u).unwrap_or_default();
                        redis::pipe()
                            .cmd("HSET")
                            .arg(&key)
                            .arg(*c)
                            .arg(json)
                            .ignore()
                            .cmd("PEXPIRE")
                            .arg(&key)
                            .arg(lease)
                            .ignore()
                            .query::<()>(conn)?;
                    }
                    None => {
                        let _: i64 = redis::cmd("HDEL").arg(&key).arg(*c).query(conn)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every beat (0.4 s): reconnects if needed, renews this node's leases, and looks for nodes
    /// that stopped renewing theirs.
    fn beat(&mut self) {
        if self.conn.is_none() {
            match connect(&self.client) {
                Ok(conn) => {
                    self.conn = Some(conn);
                    if let Err(e) = self.restore() {
                        self.lost(&e);
                        return;
                    }
                    let away = self
                        .down_since
                        .take()
                        .map_or(0.0, |t| t.elapsed().as_secs_f64());
                    log::warn!("cluster: Redis is back after {away:.1} s; sending what waited");
                    self.flush_backlog();
                }
                Err(_) => return,
            }
        }
        if let Err(e) = self.renew() {
            self.lost(&e);
        }
    }

    /// True once nodes may be declared gone again.
    fn watching(&self) -> bool {
        Instant::now() >= self.watch_after
    }

    fn flush_backlog(&mut self) {
        while let Some(op) = self.backlog.pop_front() {
            if let Err(e) = self.apply(&op) {
                self.backlog.push_front(op);
                self.lost(&e);
                break;
            }
        }
        self.shared
            .backlog
            .store(self.backlog.len(), Ordering::Relaxed);
    }

    fn renew(&mut self) -> redis::RedisResult<()> {
        let node = self.shared.node;
        let lease = u64::try_from(LEASE.as_millis()).unwrap_or(4000);
        self.beats = self.beats.wrapping_add(1);
        let claims: Vec<(String, String)> = if self.beats.is_multiple_of(CLAIM_BEATS) {
            self.claims
                .iter()
                .map(|(k, &c)| (name_key(k), self.value(c)))
                .collect()
        } else {
            Vec::new()
        };
        let others: Vec<NodeId> = if self.watching() {
            self.shared.nodes().iter().copied().collect()
        } else {
            Vec::new()
        };
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(node))
            .arg(1)
            .arg("PX")
            .arg(lease)
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(presence_key(node))
            .arg(lease)
            .ignore();
        pipe.query::<()>(conn)?;
        renew_claims(conn, &claims, lease)?;
        for other in others {
            let alive: bool = redis::cmd("EXISTS").arg(node_key(other)).query(conn)?;
            if !alive {
                log::warn!("cluster: node {other} stopped renewing its lease: its users are gone");
                self.shared.nodes().remove(&other);
                let _: i64 = redis::cmd("DEL").arg(presence_key(other)).query(conn)?;
                self.shared.tell(ClusterMsg::NodeGone { node: other });
            }
        }
        Ok(())
    }

    /// After (re)connecting: this node's heartbeat, names, presence and channels go back into
    /// Redis (which may have forgotten them), and the hub gets the other nodes' picture.
    fn restore(&mut self) -> redis::RedisResult<()> {
        let node = self.shared.node;
        let lease = u64::try_from(LEASE.as_millis()).unwrap_or(4000);
        let presence: Vec<(u64, String)> = self
            .presence
            .iter()
            .map(|(c, u)| (*c, serde_json::to_string(u).unwrap_or_default()))
            .collect();
        let claims: Vec<(String, String)> = self
            .claims
            .iter()
            .map(|(k, &c)| (name_key(k), self.value(c)))
            .collect();
        let mine = self.channels.clone();
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let _: () = redis::cmd("SET")
            .arg(node_key(node))
            .arg(1)
            .arg("PX")
            .arg(lease)
            .query(conn)?;
        renew_claims(conn, &claims, lease)?;
        for chunk in presence.chunks(RENEW_CHUNK) {
            let mut hset = redis::cmd("HSET");
            hset.arg(presence_key(node));
            for (c, json) in chunk {
                hset.arg(*c).arg(json);
            }
            let _: i64 = hset.query(conn)?;
        }
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(presence_key(node))
            .arg(lease)
            .query(conn)?;
        let create = redis::Script::new(CREATE_CHANNEL);
        for name in &mine {
            let key = crate::names::channel_key(name);
            let _: i64 = create
                .key(CHANNELS)
                .key(CHANNEL_KEYS)
                .arg(&*key)
                .arg(name)
                .arg(i64::MAX)
                .invoke(conn)?;
        }
        let channels: Vec<String> = redis::cmd("LRANGE")
            .arg(CHANNELS)
            .arg(0)
            .arg(-1)
            .query(conn)?;
        let mut users = Vec::new();
        let mut nodes = HashSet::new();
        let keys = scan_keys(conn, "chat:presence:*")?;
        for key in keys {
            let Some(other) = key
                .strip_prefix("chat:presence:")
                .and_then(|n| n.parse::<NodeId>().ok())
            else {
                continue;
            };
            if other == node {
                continue;
            }
            let alive: bool = redis::cmd("EXISTS").arg(node_key(other)).query(conn)?;
            if !alive {
                continue;
            }
            nodes.insert(other);
            let entries: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query(conn)?;
            for json in entries.values() {
                if let Ok(user) = serde_json::from_str::<RemoteUser>(json) {
                    users.push(user);
                }
            }
        }
        self.channels = channels.clone();
        self.shared.nodes().extend(nodes);
        self.watch_after = Instant::now() + LEASE;
        self.shared.up.store(true, Ordering::Relaxed);
        self.shared.tell(ClusterMsg::Snapshot { users, channels });
        Ok(())
    }
}

/// The reader: follows the event stream from `last`, handing the other nodes' events to the
/// hub; reconnects by itself and carries on where it was.
fn read_stream(client: Client, shared: &Shared, mut last: String) {
    let mut conn: Option<Connection> = None;
    // The last event number seen from each node: a resent event is dropped.
    let mut seen: HashMap<NodeId, u64> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match connect(&client) {
                Ok(c) => {
                    conn = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(_) => {
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
            continue;
        };
        let reply: redis::RedisResult<Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(EVENTS)
            .arg(&last)
            .query(c);
        match reply {
            Ok(value) => {
                let mut got = Vec::new();
                for entry in entries(value) {
                    last = entry.id;
                    if entry.origin == Some(shared.node) {
                        continue;
                    }
                    let wires = match decode_events(&entry.events) {
                        Ok(wires) => wires,
                        Err(e) => {
                            log::warn!("cluster: an event not understood: {e}");
                            continue;
                        }
                    };
                    for (no, wire) in (entry.no..).zip(wires) {
                        if wire.node() == shared.node {
                            continue;
                        }
                        let newest = seen.entry(wire.node()).or_insert(0);
                        if no <= *newest {
                            continue;
                        }
                        *newest = no;
                        got.push(wire);
                    }
                }
                if !got.is_empty() {
                    shared.nodes().extend(got.iter().map(Wire::node));
                    // One wake for the whole read: the loop takes them all in one turn.
                    shared.tell_all(got.into_iter().map(ClusterMsg::Remote));
                }
            }
            Err(e) => {
                log::debug!("cluster: stream read: {e}");
                conn = None;
            }
        }
    }
}

/// One entry of the event stream.
struct Entry {
    id: String,
    /// The node that sent it.
    origin: Option<NodeId>,
    /// The number of its first event.
    no: u64,
    /// Its events, each in postcard's encoding, one after the other.
    events: Vec<u8>,
}

/// The entries of an XREAD reply.
fn entries(value: Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let streams = match value {
        Value::Array(s) => s,
        Value::Map(m) => m
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return out,
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        if parts.len() < 2 {
            continue;
        }
        let Value::Array(items) = parts.swap_remove(1) else {
            continue;
        };
        for item in items {
            let Value::Array(mut pair) = item else {
                continue;
            };
            if pair.len() < 2 {
                continue;
            }
            let fields = pair.swap_remove(1);
            let Some(id) = string(pair.swap_remove(0)) else {
                continue;
            };
            if let Value::Array(kv) = fields {
                let mut it = kv.into_iter();
                let (mut no, mut events, mut origin) = (0, None, None);
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    match string(k).as_deref() {
                        Some("e") => events = bytes(v),
                        Some("n") => no = string(v).and_then(|n| n.parse().ok()).unwrap_or(0),
                        Some("o") => origin = string(v).and_then(|n| n.parse().ok()),
                        _ => {}
                    }
                }
                if let Some(events) = events {
                    out.push(Entry {
                        id: id.clone(),
                        origin,
                        no,
                        events,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(no: u64, text_len: usize) -> Pending {
        let wire = Wire::Chat {
            node: 1,
            conn: 2,
            chan: "tas".into(),
            text: "x".repeat(text_len),
            kind: super::super::WireKind::Chat,
            seq: no,
        };
        Pending::Event {
            no,
            bytes: postcard::to_allocvec(&wire).unwrap(),
        }
    }

    #[test]
    fn events_in_a_row_share_entries_up_to_their_size_and_read_back_in_order() {
        let mut run: Vec<Pending> = (1..=200).map(|no| event(no, 180)).collect();
        run.push(event(201, 2 * ENTRY_BYTES));
        run.push(event(202, 10));
        let entries = pack(&run);
        // About 16 KiB of ~190-byte events each, then the long one alone, then the last.
        assert!(entries.len() >= 4, "{} entries", entries.len());
        let long = entries.iter().position(|(no, _)| *no == 201).unwrap();
        assert_eq!(entries[long + 1].0, 202);
        let mut next = 1;
        for (from, body) in &entries {
            assert_eq!(*from, next);
            assert!(body.len() <= ENTRY_BYTES || *from == 201);
            let wires = decode_events(body).unwrap();
            for wire in wires {
                assert!(matches!(wire, Wire::Chat { seq, .. } if seq == next));
                next += 1;
            }
        }
        assert_eq!(next, 203);
        // A cut entry is an error, not a panic or a short read taken as whole.
        let (_, body) = &entries[0];
        assert!(decode_events(&body[..body.len() - 1]).is_err());
    }
}
