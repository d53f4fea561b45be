//! Request framing on HTTP/1 client connections, read from the raw bytes: which request head
//! carried both `Content-Length` and `Transfer-Encoding`.
//!
//! Such a request is the classic request-smuggling vector (RFC 9112 §6.1): a front end and a
//! back end that disagree on which header frames the body disagree on where the next request
//! starts. hyper lets `Transfer-Encoding` win, drops `Content-Length` from the parsed head and
//! closes the connection afterwards, so the request Portcullis gets no longer shows the
//! conflict. Portcullis refuses these requests with `400 Bad Request` instead of forwarding them,
//! so it has to see the conflict before hyper hides it: [`FramingScanner`] follows every byte
//! the client sends, message by message, framing bodies the way hyper does, and remembers the
//! first head with both headers. [`ConflictingFraming`] carries that finding from the
//! connection's reader to its request service.
//!
//! The scanner is a follower, never a judge: on anything it cannot follow exactly like hyper
//! (HTTP/2, upgrades, `CONNECT`, malformed or unusual framing) it switches itself off for the
//! rest of the connection and hyper handles the input alone. Input hyper rejects needs no
//! following: hyper closes the connection after rejecting it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes kept of each head line: enough for a header name and any sane `Content-Length` or
/// `Transfer-Encoding` value. Longer lines are cut; only those two headers need their value.
const LINE_KEEP: usize = 256;

/// Where the scanner is in the byte stream. The chunked states mirror hyper's chunked decoder
/// byte for byte, so that both agree on where a chunked body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request line; empty lines are skipped, as hyper does.
    RequestLine,
    /// The header lines of a head, up to the empty line.
    Headers,
    /// Bytes of a `Content-Length` body still to come.
    Sized(u64),
    /// The first hex digit of a chunk size.
    ChunkStart,
    /// More hex digits of a chunk size.
    ChunkSize(u64),
    /// Spaces after a chunk size.
    ChunkSizeSpace(u64),
    /// A chunk extension, up to the CR.
    ChunkExtension(u64),
    /// The LF of a chunk-size line.
    ChunkSizeLf(u64),
    /// Bytes of chunk data still to come.
    ChunkData(u64),
    /// The CR after chunk data.
    ChunkDataCr,
    /// The LF after chunk data.
    ChunkDataLf,
    /// After the last chunk: a trailer line or the final CR.
    TrailerStart,
    /// Inside a trailer line, up to its CR.
    Trailer,
    /// The LF of a trailer line.
    TrailerLf,
    /// The final LF of a chunked body.
    EndLf,
    /// Not following this connection any more.
    Off,
}

/// What the `Content-Length` headers of a head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Length {
    /// No `Content-Length` (or only ones after `Transfer-Encoding`).
    #[default]
    Absent,
    /// One length, possibly repeated.
    Known(u64),
    /// Invalid, conflicting or too long to keep: hyper rejects the head or the scanner cannot
    /// tell.
    Unknown,
}

/// The framing facts of the head being read.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    content_length: Length,
    has_content_length: bool,
    has_transfer_encoding: bool,
    /// Whether the last `Transfer-Encoding` ends in `chunked`; `None` when it was too long to
    /// keep.
    chunked: Option<bool>,
}

/// Follows the request framing of one HTTP/1 client connection and finds the first request head
/// that carried both `Content-Length` and `Transfer-Encoding`.
///
/// Feed it every slice of bytes read from the client, in order, after TLS. It costs a few
/// comparisons per byte of request head and nothing per byte of body; once off, nothing at all.
/// It never panics, whatever the input.
#[derive(Debug, Clone)]
pub struct FramingScanner {
    state: State,
    line: [u8; LINE_KEEP],
    line_len: usize,
    line_cut: bool,
    head: Head,
    heads: u64,
    conflicting_head: Option<u64>,
    /// Whether the scanner switched off in the middle of a request head.
    off_in_head: bool,
}

impl Default for FramingScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl FramingScanner {
    /// A scanner for a new connection, waiting for the first request line.
    pub fn new() -> Self {
        Self {
            state: State::RequestLine,
            line: [0; LINE_KEEP],
            line_len: 0,
            line_cut: false,
            head: Head::default(),
            heads: 0,
            conflicting_head: None,
            off_in_head: false,
        }
    }

    /// Request heads completed so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// Whether a request head is awaited or being read: the connection's first head from the
    /// start, later ones from their first byte to their empty line. Once the scanner is off,
    /// whether it switched off in the middle of a head.
    pub fn in_head(&self) -> bool {
        match self.state {
            State::Headers => true,
            State::RequestLine => self.line_len > 0 || self.heads == 0,
            State::Off => self.off_in_head,
            _ => false,
        }
    }

    /// Whether the scanner stopped following the connection: the rest of its bytes need not be
    /// fed.
    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// The 1-based index, among the connection's request heads, of the first head that carried
    /// both `Content-Length` and `Transfer-Encoding`. hyper serves no request after that one.
    pub fn conflicting_head(&self) -> Option<u64> {
        self.conflicting_head
    }

    /// Follows the next `bytes` the client sent.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::RequestLine | State::Headers => {
                    match bytes.iter().position(|&b| b == b'\n') {
                        // A whole line in this read (the common case): looked at in place.
                        Some(end) if self.line_len == 0 && !self.line_cut => {
                            let line = bytes.get(..end).unwrap_or_default();
                            bytes = bytes.get(end + 1..).unwrap_or_default();
                            let cut = line.len() > LINE_KEEP;
                            self.on_line(line.get(..LINE_KEEP).unwrap_or(line), cut);
                        }
                        Some(end) => {
                            self.keep(bytes.get(..end).unwrap_or_default());
                            bytes = bytes.get(end + 1..).unwrap_or_default();
                            self.end_line();
                        }
                        None => {
                            self.keep(bytes);
                            return;
                        }
                    }
                }
                State::Sized(remaining) => {
                    let rest = skip(&mut bytes, remaining);
                    self.state = if rest == 0 {
                        State::RequestLine
                    } else {
                        State::Sized(rest)
                    };
                }
                State::ChunkData(remaining) => {
                    let rest = skip(&mut bytes, remaining);
                    self.state = if rest == 0 {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData(rest)
                    };
                }
                State::Trailer => match bytes.iter().position(|&b| b == b'\r') {
                    Some(cr) => {
                        bytes = bytes.get(cr + 1..).unwrap_or_default();
                        self.state = State::TrailerLf;
                    }
                    None => return,
                },
                state => {
                    let Some((&byte, rest)) = bytes.split_first() else {
                        return;
                    };
                    bytes = rest;
                    self.state = chunk_step(state, byte);
                }
            }
        }
    }

    /// Keeps the start of the current line, up to [`LINE_KEEP`] bytes.
    fn keep(&mut self, part: &[u8]) {
        let start = self.line_len.min(LINE_KEEP);
        let take = part.len().min(LINE_KEEP - start);
        if let (Some(to), Some(from)) = (self.line.get_mut(start..start + take), part.get(..take)) {
            to.copy_from_slice(from);
        }
        self.line_len = start + take;
        self.line_cut |= part.len() > take;
    }

    /// Acts on the line just completed by an LF, from the bytes kept of it.
    fn end_line(&mut self) {
        let (kept, len, cut) = (self.line, self.line_len, self.line_cut);
        self.line_len = 0;
        self.line_cut = false;
        self.on_line(kept.get(..len).unwrap_or_default(), cut);
    }

    /// Acts on a line: `kept` is its start (all of it unless `cut`), without the LF.
    fn on_line(&mut self, kept: &[u8], cut: bool) {
        // A CR that was cut off does not matter: a cut line is never compared whole.
        let text = kept.strip_suffix(b"\r").unwrap_or(kept);
        match self.state {
            State::RequestLine => {
                self.state = request_line(text);
                self.off_in_head = self.state == State::Off;
            }
            State::Headers if text.is_empty() => self.end_head(),
            State::Headers if !header_line(&mut self.head, text, cut) => {
                self.state = State::Off;
                self.off_in_head = true;
            }
            _ => {}
        }
    }

    /// The empty line after the headers: count the head and frame its body.
    fn end_head(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.heads = self.heads.saturating_add(1);
        if head.has_content_length && head.has_transfer_encoding {
            self.conflicting_head.get_or_insert(self.heads);
            // hyper closes the connection after this request: nothing after it matters.
            self.state = State::Off;
            return;
        }
        self.state = if head.has_transfer_encoding {
            match head.chunked {
                Some(true) => State::ChunkStart,
                // hyper rejects a request whose transfer coding is not chunked.
                _ => State::Off,
            }
        } else {
            match head.content_length {
                Length::Absent | Length::Known(0) => State::RequestLine,
                Length::Known(n) => State::Sized(n),
                Length::Unknown => State::Off,
            }
        };
    }
}

/// Skips up to `remaining` bytes of `bytes`; returns how many are still to skip.
fn skip(bytes: &mut &[u8], remaining: u64) -> u64 {
    let take = usize::try_from(remaining)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    *bytes = bytes.get(take..).unwrap_or_default();
    remaining.saturating_sub(take as u64)
}

/// The state after a non-empty line where a request line is expected (empty ones are skipped).
fn request_line(text: &[u8]) -> State {
    if text.is_empty() {
        return State::RequestLine;
    }
    let method = text.split(|&b| b == b' ').next().unwrap_or_default();
    if text.starts_with(b"PRI * HTTP/2")
        || method == b"CONNECT"
        || method.is_empty()
        || matches!(text.first(), Some(b'\t' | b'\r'))
    {
        // HTTP/2, a tunnel, or something hyper rejects.
        State::Off
    } else {
        State::Headers
    }
}

/// Notes what a header line says about framing. `false` when the scanner cannot follow: a
/// folded or odd line, or an upgrade (whose bytes after the head are not HTTP/1).
fn header_line(head: &mut Head, text: &[u8], cut: bool) -> bool {
    if matches!(text.first(), Some(b' ' | b'\t')) {
        return false;
    }
    let Some(colon) = text.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = text.get(..colon).unwrap_or_default();
    let value = trim(text.get(colon + 1..).unwrap_or_default());
    if name.eq_ignore_ascii_case(b"content-length") {
        head.has_content_length = true;
        // Like hyper, a Content-Length after Transfer-Encoding is not even parsed.
        if !head.has_transfer_encoding {
            let length = if cut {
                None
            } else {
                crate::wire::content_length(value)
            };
            head.content_length = match (head.content_length, length) {
                (Length::Absent, Some(n)) => Length::Known(n),
                (Length::Known(previous), Some(n)) if previous == n => Length::Known(n),
                _ => Length::Unknown,
            };
        }
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        head.has_transfer_encoding = true;
        head.chunked = (!cut).then(|| ends_in_chunked(value));
    } else if name.eq_ignore_ascii_case(b"upgrade") {
        return false;
    }
    true
}

/// The next chunked-body state after `byte`, exactly as hyper's chunked decoder moves.
fn chunk_step(state: State, byte: u8) -> State {
    match (state, byte) {
        (State::ChunkStart, _) => hex(byte).map_or(State::Off, State::ChunkSize),
        (State::ChunkSize(size), _) if hex(byte).is_some() => hex(byte)
            .and_then(|digit| size.checked_mul(16)?.checked_add(digit))
            .map_or(State::Off, State::ChunkSize),
        (State::ChunkSize(size) | State::ChunkSizeSpace(size), b' ' | b'\t') => {
            State::ChunkSizeSpace(size)
        }
        (
            State::ChunkSize(size) | State::ChunkSizeSpace(size) | State::ChunkExtension(size),
            b'\r',
        ) => State::ChunkSizeLf(size),
        (State::ChunkSize(size) | State::ChunkSizeSpace(size), b';') => State::ChunkExtension(size),
        (State::ChunkExtension(_), b'\n') => State::Off,
        (State::ChunkExtension(size), _) => State::ChunkExtension(size),
        (State::ChunkSizeLf(0), b'\n') => State::TrailerStart,
        (State::ChunkSizeLf(size), b'\n') => State::ChunkData(size),
        (State::ChunkDataCr, b'\r') => State::ChunkDataLf,
        (State::ChunkDataLf, b'\n') => State::ChunkStart,
        (State::TrailerStart, b'\r') => State::EndLf,
        (State::TrailerStart, _) => State::Trailer,
        (State::TrailerLf, b'\n') => State::TrailerStart,
        (State::EndLf, b'\n') => State::RequestLine,
        _ => State::Off,
    }
}

/// The value of a hex digit.
fn hex(byte: u8) -> Option<u64> {
    crate::path::hex_value(byte).map(u64::from)
}

/// Whether the last coding of a `Transfer-Encoding` value is `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
    trim(last).eq_ignore_ascii_case(b"chunked")
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// What one connection's [`FramingScanner`] found, shared between the connection's reader, which
/// records it, and its request service, which refuses the request it points at.
#[derive(Debug, Default)]
pub struct ConflictingFraming {
    /// 1-based index of the first conflicting head; 0 for none.
    head: AtomicU64,
    /// HTTP/1 requests the service has seen.
    requests: AtomicU64,
}

impl ConflictingFraming {
    /// Records that request head `head` (1-based) carried both framing headers. Only the first
    /// one counts: hyper serves no request after it.
    pub fn record(&self, head: u64) {
        let _ = self
            .head
            .compare_exchange(0, head, Ordering::Release, Ordering::Relaxed);
    }

    /// Counts one more HTTP/1 request on the connection and says whether it is the one whose
    /// head carried both `Content-Length` and `Transfer-Encoding`.
    ///
    /// The reader always sees a head before hyper hands its request to the service, so the
    /// record is in place by the time it is asked for.
    pub fn next_request_conflicts(&self) -> bool {
        let index = self
            .requests
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        index == self.head.load(Ordering::Acquire)
    }
}

/// Whether an HTTP/1 connection is waiting for a request head, for the header read timeout,
/// shared between the connection's reader (which follows the heads, see [`FramingScanner`]) and
/// its service and supervisor.
#[derive(Debug)]
pub struct HeadProgress {
    /// Heads completed, shifted left twice; [`OFF`] when the reader stopped following;
    /// [`IN_HEAD`] while a head is awaited or being read.
    state: AtomicU64,
}

/// Bit of [`HeadProgress::state`]: a head is awaited or being read.
const IN_HEAD: u64 = 1;
/// Bit of [`HeadProgress::state`]: the reader no longer follows the heads.
const OFF: u64 = 2;

impl Default for HeadProgress {
    fn default() -> Self {
        // A new connection awaits its first head.
        Self {
            state: AtomicU64::new(IN_HEAD),
        }
    }
}

impl HeadProgress {
    /// Publishes what `scanner` saw so far.
    pub fn publish(&self, scanner: &FramingScanner) {
        let state = (scanner.heads() << 2)
            | if scanner.is_off() { OFF } else { 0 }
            | if scanner.in_head() { IN_HEAD } else { 0 };
        self.state.store(state, Ordering::Relaxed);
    }

    /// Publishes the plain server's view: `heads` completed, and whether one is awaited or
    /// being read.
    pub fn set(&self, heads: u64, in_head: bool) {
        let state = (heads << 2) | if in_head { IN_HEAD } else { 0 };
        self.state.store(state, Ordering::Relaxed);
    }

    /// A request was handed to the service: its head is complete. Only news once the reader
    /// stopped following (an upgrade the backend refused, say): from then on no head counts as
    /// in progress.
    pub fn request_started(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if state & (OFF | IN_HEAD) == OFF | IN_HEAD {
            self.state.store(state & !IN_HEAD, Ordering::Relaxed);
        }
    }

    /// Whether the reader stopped following the requests' framing.
    pub fn is_off(&self) -> bool {
        self.state.load(Ordering::Relaxed) & OFF != 0
    }

    /// The head being awaited or read, as a value that changes when another head starts or
    /// the head completes; `None` between requests.
    pub fn pending_head(&self) -> Option<u64> {
        let state = self.state.load(Ordering::Relaxed);
        (state & IN_HEAD != 0).then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
    /// Its body looks like a head with both framings; it must be skipped as body.
    const POST_SIZED: &[u8] = b"POST /two HTTP/1.1\r\nHost: h\r\ncontent-LENGTH: 66\r\n\r\n\
        GET /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    const POST_CHUNKED: &[u8] =
        b"POST /three HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
        5;name=value\r\nhello\r\n\
        1a ; a=b;c=\"d\"\r\nabcdefghijklmnopqrstuvwxyz\r\n\
        0;last\r\nx-trailer: 1\r\nx-other: two\r\n\r\n";
    const BAD: &[u8] = b"POST /four HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn heads_are_in_progress_from_their_first_byte_to_their_empty_line() {
        let mut scanner = FramingScanner::new();
        assert!(
            scanner.in_head(),
            "the first head is awaited from the start"
        );
        scanner.feed(b"GET / HTTP/1.1\r\nHost: h\r\n");
        assert!(scanner.in_head());
        scanner.feed(b"\r\n");
        assert!(!scanner.in_head(), "between requests nothing is awaited");
        scanner.feed(b"GE");
        assert!(scanner.in_head());
        assert_eq!(scanner.heads(), 1);
        scanner.feed(b"T / HTTP/1.1\r\nUpgrade: websocket\r\n");
        assert!(scanner.is_off());
        assert!(scanner.in_head(), "switched off in the middle of a head");
        let progress = HeadProgress::default();
        progress.publish(&scanner);
        assert!(progress.pending_head().is_some());
        progress.request_started();
        assert_eq!(progress.pending_head(), None);
    }

    fn scan(input: &[u8]) -> FramingScanner {
        let mut scanner = FramingScanner::new();
        scanner.feed(input);
        scanner
    }

    fn pipeline() -> Vec<u8> {
        [GET, POST_SIZED, POST_CHUNKED, BAD, GET].concat()
    }

    /// A small deterministic generator, so that failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn content_length_then_transfer_encoding_is_flagged() {
        let scanner = scan(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert_eq!(scanner.conflicting_head(), Some(1));
    }

    #[test]
    fn transfer_encoding_then_content_length_is_flagged() {
        let scanner = scan(
            b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 4\r\n\r\n0\r\n\r\n",
        );
        assert_eq!(scanner.conflicting_head(), Some(1));
    }

    #[test]
    fn a_request_with_one_framing_header_is_not_flagged() {
        assert_eq!(scan(POST_SIZED).conflicting_head(), None);
        assert_eq!(scan(POST_CHUNKED).conflicting_head(), None);
        assert_eq!(scan(GET).conflicting_head(), None);
        assert!(!scan(&[GET, POST_SIZED, POST_CHUNKED].concat()).is_off());
    }

    #[test]
    fn pipelined_requests_are_indexed_in_order() {
        assert_eq!(scan(&pipeline()).conflicting_head(), Some(4));
        assert_eq!(scan(&[BAD, GET].concat()).conflicting_head(), Some(1));
        assert_eq!(scan(&[GET, BAD].concat()).conflicting_head(), Some(2));
    }

    #[test]
    fn pipelined_requests_are_indexed_in_order_when_fed_one_byte_at_a_time() {
        let mut scanner = FramingScanner::new();
        for byte in pipeline() {
            scanner.feed(&[byte]);
        }
        assert_eq!(scanner.conflicting_head(), Some(4));
    }

    #[test]
    fn pipelined_requests_are_indexed_in_order_whatever_the_read_sizes() {
        let input = pipeline();
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..500 {
            let mut scanner = FramingScanner::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (now, later) = rest.split_at(1 + random.below(rest.len().min(40)));
                scanner.feed(now);
                rest = later;
            }
            assert_eq!(scanner.conflicting_head(), Some(4));
        }
    }

    #[test]
    fn framing_headers_inside_a_chunked_body_are_not_flagged() {
        let body = b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut input =
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        input.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        input.extend_from_slice(body);
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        input.extend_from_slice(GET);
        let scanner = scan(&input);
        assert_eq!(scanner.conflicting_head(), None);
        assert!(!scanner.is_off());
    }

    #[test]
    fn empty_lines_before_a_request_line_are_skipped_like_hyper_does() {
        let input = [b"\r\n\n\r\n".as_slice(), GET, b"\r\n", BAD].concat();
        assert_eq!(scan(&input).conflicting_head(), Some(2));
    }

    #[test]
    fn bare_lf_line_endings_in_heads_are_followed() {
        let input = b"GET / HTTP/1.1\nHost: h\n\nPOST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n";
        assert_eq!(scan(input).conflicting_head(), Some(2));
    }

    #[test]
    fn padded_framing_headers_longer_than_a_kept_line_are_still_flagged() {
        let padding = " ".repeat(LINE_KEEP * 2);
        let input = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding:{padding}chunked\r\nContent-Length: 4{padding}\r\n\r\n"
        );
        assert_eq!(scan(input.as_bytes()).conflicting_head(), Some(1));
    }

    #[test]
    fn long_unrelated_lines_do_not_stop_the_scanner() {
        let long = "a".repeat(LINE_KEEP * 4);
        let input = format!("GET /{long} HTTP/1.1\r\nCookie: {long}\r\n\r\n");
        let input = [input.as_bytes(), BAD].concat();
        assert_eq!(scan(&input).conflicting_head(), Some(2));
    }

    #[test]
    fn the_http2_preface_switches_the_scanner_off() {
        let scanner = scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00");
        assert!(scanner.is_off());
        assert_eq!(scanner.conflicting_head(), None);
    }

    #[test]
    fn upgrades_and_tunnels_switch_the_scanner_off() {
        let upgrade =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(scan(upgrade).is_off());
        assert!(scan(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n").is_off());
        // What follows an upgrade is not HTTP/1, however much it looks like it.
        assert_eq!(
            scan(&[upgrade.as_slice(), BAD].concat()).conflicting_head(),
            None
        );
    }

    #[test]
    fn framing_the_scanner_cannot_follow_switches_it_off() {
        for input in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nb\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nX-A: b\r\n folded\r\n\r\n",
            b"POST / HTTP/1.1\r\nno colon\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(scan(input).is_off(), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_repeated_equal_content_length_is_followed() {
        let input = [
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".as_slice(),
            BAD,
        ]
        .concat();
        assert_eq!(scan(&input).conflicting_head(), Some(2));
    }

    #[test]
    fn random_input_never_panics() {
        let alphabet = b"\r\n\r\n:; \t0123456789abcdefABCDEF,GETPOSTPRI*/HTTP1.xContent-LengthTransfer-Encodingchunked\x00\xff";
        let mut random = XorShift(0x2545_f491_4f6c_dd1d);
        for round in 0..2000 {
            let len = random.below(600);
            let mut input: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| random.next() as u8).collect()
            } else {
                (0..len)
                    .map(|_| alphabet[random.below(alphabet.len())])
                    .collect()
            };
            if round % 3 == 0 {
                input.splice(0..0, BAD.iter().copied());
                input.splice(0..0, POST_CHUNKED.iter().copied());
            }
            let mut scanner = FramingScanner::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (now, later) = rest.split_at(1 + random.below(rest.len()));
                scanner.feed(now);
                rest = later;
            }
        }
    }

    #[test]
    fn only_the_request_at_the_recorded_head_conflicts() {
        let shared = ConflictingFraming::default();
        shared.record(3);
        shared.record(5);
        let answers: Vec<bool> = (0..5).map(|_| shared.next_request_conflicts()).collect();
        assert_eq!(answers, [false, false, true, false, false]);
    }

    #[test]
    fn without_a_record_no_request_conflicts() {
        let shared = ConflictingFraming::default();
        assert!((0..10).all(|_| !shared.next_request_conflicts()));
    }
}
