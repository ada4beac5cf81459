//! One client connection as the event loop sees it: its socket, its transport (plain TCP or
//! TLS, a layer under any protocol), the partial frame it is receiving, input held while the
//! hub makes it wait, the bytes queued for it, its flood budget, and how it is being closed.
//!
//! Memory: an idle connection holds neither an output buffer nor a partial frame; both come
//! from a [`BufPool`] when needed and go back to it when emptied. This keeps an idle client
//! under 1 KiB of server memory, and a busy one from allocating.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::frame::{Frame, FRAME_LEN};
use crate::hub::{conn_label, ConnId, Proto};
use crate::outq::{OutQueue, TurnLog};

/// Output buffers kept for reuse hold at most this many bytes in all (see [`BufPool`]).
pub const POOL_BYTES: usize = 16 << 20;
/// A buffer larger than this is freed rather than kept for reuse.
const POOL_MAX_BUF: usize = 1 << 20;
/// At most this many partial-frame buffers are kept for reuse.
const POOL_PARTIALS: usize = 4096;

/// Buffers that are not in use: a connection with nothing queued holds no output buffer, and
/// takes one from here when a frame is queued for it; likewise for the partial frame a read
/// may end in. So neither a burst nor a steady load allocates, and an idle connection costs
/// no buffer memory.
#[derive(Debug, Default)]
pub struct BufPool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
    // Boxed: a partial frame moves between the pool and a connection as a pointer.
    #[allow(clippy::vec_box)]
    partials: Vec<Box<Frame>>,
}

impl BufPool {
    /// An empty buffer, with whatever capacity it last had.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        match self.bufs.pop() {
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Takes a buffer back for reuse (or frees it when the pool is full).
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > POOL_MAX_BUF || self.bytes + cap > POOL_BYTES {
            return;
        }
        buf.clear();
        self.bytes += cap;
        self.bufs.push(buf);
    }

    /// Bytes held by the pool.
    pub fn bytes(&self) -> usize {
        self.bytes + self.partials.len() * FRAME_LEN
    }

    fn take_partial(&mut self) -> Box<Frame> {
        self.partials
            .pop()
            .unwrap_or_else(|| Box::new([0; FRAME_LEN]))
    }

    fn give_partial(&mut self, partial: Box<Frame>) {
        if self.partials.len() < POOL_PARTIALS {
            self.partials.push(partial);
        }
    }
}

/// What one read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes are in the buffer (more may follow).
    Data(usize),
    /// The socket has no more data for now.
    Drained,
    /// The peer closed its side (end of stream).
    Eof,
    /// The connection failed.
    Failed,
}

/// The start of a frame not yet complete: `len` bytes of it, in a buffer from the pool that
/// is held only while a frame is incomplete.
#[derive(Debug, Default)]
struct Partial {
    buf: Option<Box<Frame>>,
    len: u8,
}

impl Partial {
    /// The next whole frame from what is buffered and `data[*pos..]`, advancing `pos` past
    /// what it used; None (with everything used and kept) when no whole frame is there yet.
    fn next(&mut self, data: &[u8], pos: &mut usize, pool: &mut BufPool) -> Option<Frame> {
        let rest = &data[*pos..];
        if let Some(partial) = self.buf.as_mut() {
            let have = usize::from(self.len);
            let take = (FRAME_LEN - have).min(rest.len());
            partial[have..have + take].copy_from_slice(&rest[..take]);
            *pos += take;
            if have + take < FRAME_LEN {
                // A partial frame is shorter than a frame, so its length fits in a u8.
                self.len = (have + take) as u8;
                return None;
            }
            let frame = **partial;
            self.len = 0;
            if let Some(buf) = self.buf.take() {
                pool.give_partial(buf);
            }
            return Some(frame);
        }
        if let Some(chunk) = rest.get(..FRAME_LEN) {
            *pos += FRAME_LEN;
            return <&Frame>::try_from(chunk).ok().copied();
        }
        if !rest.is_empty() {
            let partial = self.buf.get_or_insert_with(|| pool.take_partial());
            partial[..rest.len()].copy_from_slice(rest);
            self.len = rest.len() as u8;
            *pos += rest.len();
        }
        None
    }

    fn release(&mut self, pool: &mut BufPool) {
        if let Some(buf) = self.buf.take() {
            pool.give_partial(buf);
        }
        self.len = 0;
    }
}

/// How far a connection is in being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Open.
    No,
    /// The hub is done with it: what is queued is written (until `until`), then its side is
    /// shut down and its input read and dropped until the peer closes, so that the last
    /// frame (a reason) reaches the peer instead of a reset.
    Draining { until: Instant, shut: bool },
    /// To be removed at the end of the turn.
    Now,
}

/// What carries a connection's bytes.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS over TCP: the socket's bytes are records; the codec sees the plaintext.
    Tls(Box<rustls::ServerConnection>),
}

/// The plaintext side of a TLS connection as a writer: what the output queue writes goes into
/// rustls (up to its buffer bound, then "would block").
struct TlsPlain<'a>(&'a mut rustls::ServerConnection);

impl Write for TlsPlain<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.writer().write(buf)? {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.0.writer().write_vectored(bufs)? {
            0 if bufs.iter().any(|b| !b.is_empty()) => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes what rustls has for the socket, until it has nothing or the socket is full.
fn write_records(tls: &mut rustls::ServerConnection, stream: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The input side of an IRC connection: bytes not yet cut into lines (at most one read and a
/// partial line), and the session they go to.
#[derive(Debug)]
pub struct IrcIn {
    pub splitter: crate::proto::irc::message::LineSplitter,
    pub buf: Vec<u8>,
    /// Taken out while it handles a line (it needs the hub and the connections), else there.
    pub session: Option<Box<crate::proto::irc::Session>>,
}

/// The input side of a connection on the web port: the HTTP/WebSocket codec (which keeps
/// what it was fed), and whether it stopped with input left because the hub made the
/// connection wait.
#[derive(Debug)]
pub struct WebIn {
    pub codec: crate::proto::web::WebConn,
    pub stalled: bool,
}

/// How a connection's plaintext is cut into inputs for its protocol.
#[derive(Debug)]
pub enum Codec {
    /// 200-byte frames (a partial one and held input are in the connection).
    Frame,
    /// IRC lines.
    Irc(Box<IrcIn>),
    /// HTTP, then WebSocket messages each holding a frame's text.
    Web(Box<WebIn>),
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    /// Plain or TLS.
    pub transport: Transport,
    /// The protocol it speaks.
    pub proto: Proto,
    /// How its input is cut.
    pub codec: Codec,
    partial: Partial,
    /// Input read but not handed to the hub yet: the rest of a read after the hub began to
    /// make this connection wait. At most one read's worth; nothing more is read until it is
    /// handled. A boxed slice: no capacity word, as most connections never hold any.
    pub held: Box<[u8]>,
    /// What is queued for the client (see [`OutQueue`]).
    pub out: OutQueue,
    writable_registered: bool,
    /// The hub's id for this connection, unique for the server's lifetime.
    pub id: ConnId,
    /// Flood budget in frames; refilled over time.
    tokens: f64,
    refilled: Instant,
    /// Set once the connection takes no more input; see [`Closing`].
    pub closing: Closing,
    /// The peer closed its sending side: once what it sent is handled, the connection closes.
    pub eof: bool,
    /// Queued in the loop's dirty list (has output to write this turn).
    pub dirty: bool,
    /// Queued in the loop's read list (has input to read).
    pub pending_read: bool,
    /// Throttled by the flood limit until the budget refills.
    pub throttled: bool,
    /// Still known to the hub (disconnect not yet reported).
    pub in_hub: bool,
    /// The hub wants to hear when the queue has been written out.
    pub report_flush: bool,
}

impl Conn {
    /// Wraps an accepted socket.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: TcpStream,
        transport: Transport,
        proto: Proto,
        id: ConnId,
        burst: f64,
        now: Instant,
        origins: &std::sync::Arc<[String]>,
    ) -> Self {
        let codec = match proto {
            Proto::Irc => Codec::Irc(Box::new(IrcIn {
                splitter: Default::default(),
                buf: Vec::new(),
                session: Some(Box::new(crate::proto::irc::Session::new(now))),
            })),
            Proto::Web => {
                let secure = matches!(transport, Transport::Tls(_));
                Codec::Web(Box::new(WebIn {
                    codec: crate::proto::web::WebConn::new(secure, origins.clone()),
                    stalled: false,
                }))
            }
            Proto::Frame => Codec::Frame,
        };
        Conn {
            stream,
            transport,
            proto,
            codec,
            partial: Partial::default(),
            held: Box::default(),
            out: OutQueue::default(),
            writable_registered: false,
            id,
            tokens: burst,
            refilled: now,
            closing: Closing::No,
            eof: false,
            dirty: false,
            pending_read: false,
            throttled: false,
            in_hub: true,
            report_flush: false,
        }
    }

    /// True once the connection takes no more input.
    #[inline]
    pub fn is_closing(&self) -> bool {
        self.closing != Closing::No
    }

    /// Bytes queued and not yet written (what rustls holds is bounded by
    /// [`crate::tls::TLS_BUFFER`] and not counted).
    #[inline]
    pub fn queued(&self) -> usize {
        self.out.queued()
    }

    /// True while something waits to be written: queued output, or TLS records (a handshake
    /// message, an alert).
    pub fn wants_write(&self) -> bool {
        self.queued() > 0
            || match &self.transport {
                Transport::Plain => false,
                Transport::Tls(tls) => tls.wants_write(),
            }
    }

    /// Refills the flood budget and returns how many whole frames may be read now
    /// (`usize::MAX` when there is no limit).
    pub fn allowance(&mut self, rate: f64, burst: f64, now: Instant) -> usize {
        if rate <= 0.0 {
            return usize::MAX;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.tokens.max(0.0) as usize
    }

    /// Charges the flood budget for one frame.
    #[inline]
    pub fn charge(&mut self) {
        self.tokens -= 1.0;
    }

    /// One read of at most `buf.len()` bytes of plaintext.
    pub fn read_some(&mut self, buf: &mut [u8]) -> ReadOutcome {
        let id = self.id;
        match &mut self.transport {
            Transport::Plain => read_plain(&mut self.stream, buf, id),
            Transport::Tls(tls) => read_tls(tls, &mut self.stream, buf, id),
        }
    }

    /// Reads and drops what the peer still sends (a closing connection, after its last
    /// words): raw bytes, not decrypted.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> ReadOutcome {
        read_plain(&mut self.stream, buf, self.id)
    }
}

fn read_plain(stream: &mut TcpStream, buf: &mut [u8], id: ConnId) -> ReadOutcome {
    loop {
        match stream.read(buf) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(n) => return ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{}: read error: {e}", conn_label(id));
                return ReadOutcome::Failed;
            }
        }
    }
}

/// Plaintext from a TLS connection: what rustls has decrypted, else records from the socket.
fn read_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    buf: &mut [u8],
    id: ConnId,
) -> ReadOutcome {
    loop {
        match tls.reader().read(buf) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(n) => return ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The socket closed without close_notify: the end of the stream all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return ReadOutcome::Eof,
            Err(e) => {
                log::debug!("{}: TLS read error: {e}", conn_label(id));
                return ReadOutcome::Failed;
            }
        }
        match tls.read_tls(stream) {
            Ok(0) => {
                // No more records: what rustls still holds is read above, then the end.
                match tls.process_new_packets() {
                    Ok(state) if state.plaintext_bytes_to_read() > 0 => continue,
                    _ => return ReadOutcome::Eof,
                }
            }
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Garbage instead of a ClientHello, say: send the alert, close this one.
                    log::debug!("{}: TLS error: {e}", conn_label(id));
                    let _ = write_records(tls, stream);
                    return ReadOutcome::Failed;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{}: read error: {e}", conn_label(id));
                return ReadOutcome::Failed;
            }
        }
    }
}

impl Conn {
    /// The next whole frame of `data[*pos..]` (after what an earlier read left incomplete).
    #[inline]
    pub fn next_frame(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        pool: &mut BufPool,
    ) -> Option<Frame> {
        self.partial.next(data, pos, pool)
    }

    /// Gives the connection's buffers back to the pool (it is being removed).
    pub fn release(&mut self, pool: &mut BufPool) {
        self.partial.release(pool);
        self.out.release(pool);
        self.held = Box::default();
        if let Codec::Irc(irc) = &mut self.codec {
            irc.buf = Vec::new();
        }
    }

    /// True when input read earlier is still to be handled.
    pub fn has_held(&self) -> bool {
        match &self.codec {
            Codec::Frame => !self.held.is_empty(),
            // A complete line to handle (the start of a line with no end yet waits for the
            // next read, which must therefore happen), or a session with something to settle
            // (a JOIN that waited for the cluster) once the hub resumes it.
            Codec::Irc(irc) => {
                irc.buf.iter().any(|&b| b == b'\n' || b == b'\r')
                    || irc.session.as_ref().is_some_and(|s| s.has_pending())
            }
            Codec::Web(web) => web.stalled,
        }
    }

    /// True for a web-port connection that has not upgraded to a WebSocket (an HTTP request):
    /// it cannot be told a reason in chat words.
    pub fn is_plain_http(&self) -> bool {
        matches!(&self.codec, Codec::Web(web) if !web.codec.is_upgraded())
    }

    /// Writes as much queued output as the socket takes, in as few calls as it takes; keeps
    /// the rest (see [`OutQueue::flush`]). Over TLS the plaintext goes through rustls, whose
    /// records are written first. Returns Err when the connection failed.
    pub fn flush(&mut self, log: &TurnLog, pool: &mut BufPool) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain => self.out.flush(&mut self.stream, log, pool),
            Transport::Tls(tls) => {
                write_records(tls, &mut self.stream)?;
                self.out.flush(&mut TlsPlain(tls), log, pool)?;
                write_records(tls, &mut self.stream)
            }
        }
    }

    /// Ends the sending side once everything is written: TLS's close_notify, then the TCP
    /// half-close.
    pub fn shut_write(&mut self) {
        if let Transport::Tls(tls) = &mut self.transport {
            tls.send_close_notify();
            let _ = write_records(tls, &mut self.stream);
        }
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Asks for WRITABLE events only while output is pending.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.wants_write();
        if want != self.writable_registered {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.writable_registered = want;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::pad;

    fn feed(p: &mut Partial, pool: &mut BufPool, data: &[u8]) -> Vec<String> {
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            match p.next(data, &mut pos, pool) {
                Some(f) => frames.push(crate::frame::decode(&f).into_owned()),
                None => assert_eq!(pos, data.len()),
            }
        }
        frames
    }

    #[test]
    fn partial_frames_are_joined_across_reads_and_the_buffer_is_pooled() {
        let mut pool = BufPool::default();
        let mut p = Partial::default();
        let mut data = Vec::new();
        for t in ["one", "two", "three"] {
            data.extend_from_slice(&pad(t).unwrap());
        }
        // 1 byte, then 350 (the rest of "one" and half of "two"), then the rest.
        assert!(feed(&mut p, &mut pool, &data[..1]).is_empty());
        assert_eq!(p.len, 1);
        assert_eq!(feed(&mut p, &mut pool, &data[1..351]), vec!["one"]);
        assert_eq!(p.len, 151);
        assert_eq!(feed(&mut p, &mut pool, &data[351..]), vec!["two", "three"]);
        // Between frames the connection holds no buffer; the pool has it.
        assert!(p.buf.is_none());
        assert_eq!(p.len, 0);
        assert_eq!(pool.partials.len(), 1);
        // The next partial frame reuses it.
        assert!(feed(&mut p, &mut pool, &data[..10]).is_empty());
        assert!(pool.partials.is_empty());
        p.release(&mut pool);
        assert_eq!(pool.partials.len(), 1);
    }

    #[test]
    fn frames_come_one_at_a_time_so_the_rest_can_be_held() {
        let mut pool = BufPool::default();
        let mut p = Partial::default();
        let mut data = Vec::new();
        for t in ["a", "b", "c"] {
            data.extend_from_slice(&pad(t).unwrap());
        }
        let mut pos = 0;
        let first = p.next(&data, &mut pos, &mut pool).unwrap();
        assert_eq!(crate::frame::decode(&first), "a");
        assert_eq!(pos, FRAME_LEN);
        // The caller stops here: data[pos..] is what it holds.
        assert_eq!(data.len() - pos, 2 * FRAME_LEN);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_frames() {
        let mut pool = BufPool::default();
        let mut p = Partial::default();
        let frame = pad("byte by byte").unwrap();
        let mut got = Vec::new();
        for b in frame.iter().chain(frame.iter()) {
            got.extend(feed(&mut p, &mut pool, std::slice::from_ref(b)));
        }
        assert_eq!(got, vec!["byte by byte", "byte by byte"]);
    }

    #[test]
    fn pool_reuses_output_buffers_and_stays_bounded() {
        let mut pool = BufPool::default();
        let mut buf = pool.take();
        assert_eq!(buf.capacity(), 0);
        buf.extend_from_slice(&[1; 1000]);
        let cap = buf.capacity();
        pool.give(buf);
        assert_eq!(pool.bytes(), cap);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        assert_eq!(pool.bytes(), 0);
        // Too large for the pool: freed.
        pool.give(Vec::with_capacity(POOL_MAX_BUF + 1));
        assert_eq!(pool.bytes(), 0);
        // Never more than POOL_BYTES in all.
        for _ in 0..(POOL_BYTES / POOL_MAX_BUF + 2) {
            pool.give(Vec::with_capacity(POOL_MAX_BUF));
        }
        assert!(pool.bytes() <= POOL_BYTES);
    }

    /// Any stream, read in any pieces, with the reader stopping after any frame and holding
    /// the rest of its read (as the loop does while the hub makes a connection wait), gives
    /// exactly the stream's frames, in order; a buffer is held only for a partial frame.
    #[test]
    fn partial_fuzz() {
        use rand::Rng;
        crate::hub::fuzz::run(
            "partial_fuzz",
            std::time::Duration::from_millis(300),
            |rng, _| {
                let mut stream = vec![0u8; rng.random_range(0..3000)];
                rng.fill(&mut stream[..]);
                let mut pool = BufPool::default();
                let mut p = Partial::default();
                let (mut sent, mut got, mut held) = (0, Vec::new(), Vec::<u8>::new());
                let mut reads = 0;
                while sent < stream.len() || !held.is_empty() {
                    // What an earlier read left comes first, then a new read.
                    let data = if held.is_empty() {
                        let n = rng.random_range(1..=600).min(stream.len() - sent);
                        sent += n;
                        stream[sent - n..sent].to_vec()
                    } else {
                        std::mem::take(&mut held)
                    };
                    reads += 1;
                    let mut pos = 0;
                    while pos < data.len() {
                        match p.next(&data, &mut pos, &mut pool) {
                            Some(f) => {
                                got.push(f);
                                if rng.random_bool(0.3) {
                                    held = data[pos..].to_vec();
                                    break;
                                }
                            }
                            None => assert_eq!(pos, data.len()),
                        }
                    }
                    assert_eq!(p.buf.is_some(), p.len > 0);
                }
                assert_eq!(usize::from(p.len), stream.len() % FRAME_LEN);
                let want: Vec<&[u8]> = stream.chunks_exact(FRAME_LEN).collect();
                assert_eq!(got.len(), want.len());
                assert!(got.iter().zip(want).all(|(g, w)| g[..] == *w));
                p.release(&mut pool);
                assert!(p.buf.is_none() && pool.partials.len() <= 1);
                reads
            },
        );
    }
}
