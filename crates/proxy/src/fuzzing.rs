//! Entry points for Portcullis' fuzz targets (`fuzz/`), compiled only with the `fuzzing`
//! feature: thin wrappers around the parsers that a client's or an endpoint's bytes reach, so
//! that the targets drive exactly the code the gateway runs while its internals stay private.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::{server::fuzzing as server, upstream::h1_fuzzing as h1};

/// What the plain server made of the head at the start of its buffer.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per parsed head, in fuzz targets only; a box would only cost an allocation"
)]
pub enum PlainHead {
    /// A plain request, which Portcullis serves itself; head and body were taken out of the
    /// buffer.
    Plain {
        /// The request method.
        method: Method,
        /// The request target.
        uri: Uri,
        /// The protocol version.
        version: Version,
        /// The header fields, in the order they came.
        headers: HeaderMap,
        /// The whole body.
        body: Bytes,
        /// The client asked to close the connection after the response.
        close: bool,
    },
    /// Not complete yet; `head` is whether only body bytes are missing.
    Partial {
        /// The head is complete; its body is not.
        head: bool,
    },
    /// Not a plain request: hyper serves the connection from this head on, the buffer intact.
    HandOver,
}

/// The plain server's head parser for one client connection, with a default server's limits.
#[derive(Debug)]
pub struct PlainParser(server::Parser);

impl Default for PlainParser {
    fn default() -> Self {
        Self(server::Parser::new())
    }
}

impl PlainParser {
    /// Parses the head at the start of `buf`, as the connection's loop does for its next
    /// request.
    pub fn parse(&mut self, buf: &mut BytesMut) -> PlainHead {
        self.0.parse(buf)
    }
}

/// Most bytes of body the plain server reads whole before serving a request.
pub const MAX_PLAIN_BODY: usize = server::MAX_PLAIN_BODY;

/// hyper's HTTP/1.1 server as the gateway configures it for client connections with default
/// limits: what serves a connection after the plain server hands it over.
pub fn http1_server() -> hyper::server::conn::http1::Builder {
    server::default_http1()
}

/// Follows the request framing of one client connection, as the server does to find request
/// heads with both `Content-Length` and `Transfer-Encoding`.
#[derive(Debug, Clone, Default)]
pub struct FramingScanner(server::FramingScanner);

impl FramingScanner {
    /// Follows the next bytes the client sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.0.feed(bytes);
    }

    /// Request heads completed so far.
    pub fn heads(&self) -> u64 {
        self.0.heads()
    }

    /// The 1-based index of the first head with both framing headers.
    pub fn conflicting_head(&self) -> Option<u64> {
        self.0.conflicting_head()
    }

    /// Whether the scanner stopped following the connection.
    pub fn is_off(&self) -> bool {
        self.0.is_off()
    }

    /// Whether a request head is awaited or being read.
    pub fn in_head(&self) -> bool {
        self.0.in_head()
    }
}

/// How an endpoint's response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFraming {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the endpoint closes the connection.
    Close,
}

impl UpstreamFraming {
    fn inner(self) -> h1::ResponseFraming {
        match self {
            Self::Length(n) => h1::ResponseFraming::Length(n),
            Self::Chunked => h1::ResponseFraming::Chunked,
            Self::Close => h1::ResponseFraming::Close,
        }
    }
}

/// A response head read from an endpoint.
#[derive(Debug)]
pub struct UpstreamHead {
    /// The status.
    pub status: StatusCode,
    /// The protocol version.
    pub version: Version,
    /// The fields passed on towards the client, relayed ones included.
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: UpstreamFraming,
    /// Whether the connection can carry another exchange.
    pub keep_alive: bool,
    /// When the fields are relayed as they came: the `Content-Length` they carry.
    pub relayed: Option<Option<u64>>,
}

/// The response parser of one endpoint connection.
#[derive(Debug, Default)]
pub struct UpstreamParser(h1::Scratch);

impl UpstreamParser {
    /// Parses the response head at the start of `buf`, answering a `method` request; `relay`
    /// keeps the fields as they came where they can be. `Ok(None)`: incomplete.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        method: &Method,
        relay: bool,
    ) -> Result<Option<UpstreamHead>, String> {
        let parsed = h1::parse_response(buf, method, &mut HeaderMap::new(), &mut self.0, relay);
        let Some(head) = parsed.map_err(|error| error.to_string())? else {
            return Ok(None);
        };
        let (parts, ()) = head.response.into_parts();
        let mut headers = parts.headers;
        let relayed = head.relayed.map(|relayed| {
            let length = relayed.length;
            relayed.fill(&mut headers);
            length
        });
        let framing = match head.framing {
            h1::ResponseFraming::Length(n) => UpstreamFraming::Length(n),
            h1::ResponseFraming::Chunked => UpstreamFraming::Chunked,
            h1::ResponseFraming::Close => UpstreamFraming::Close,
        };
        Ok(Some(UpstreamHead {
            status: parts.status,
            version: parts.version,
            headers,
            framing,
            keep_alive: head.keep_alive,
            relayed,
        }))
    }
}

/// What an endpoint's response body decoded to.
#[derive(Debug, Default, PartialEq)]
pub struct UpstreamBody {
    /// The body's data.
    pub data: Vec<u8>,
    /// Its trailer fields.
    pub trailers: Option<HeaderMap>,
    /// What the endpoint sent after the body.
    pub rest: Vec<u8>,
    /// Why the body failed, if it did.
    pub error: Option<String>,
}

/// Decodes a body delimited by `framing` from the endpoint's `reads`, in order, as the gateway
/// reads it; after the last read the endpoint closed the connection.
pub fn decode_upstream_body<'a>(
    framing: UpstreamFraming,
    reads: impl IntoIterator<Item = &'a [u8]>,
) -> UpstreamBody {
    h1::decode_reads(framing.inner(), reads)
}
