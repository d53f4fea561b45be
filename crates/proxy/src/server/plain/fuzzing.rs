//! The plain server's head parser as the fuzz targets drive it (see `crate::fuzzing`): one
//! connection of a server with default limits, its parser state kept from head to head.

use bytes::BytesMut;
use http::request::Parts;

use super::{
    MAX_BODY,
    head::{self, HeadLimits, Parsed, Scratch},
};
use crate::{fuzzing::PlainHead, server::ServerLimits};

/// What one connection keeps between heads: the parser's scratch and the head it parses into.
#[derive(Debug)]
pub(crate) struct Parser {
    limits: HeadLimits,
    scratch: Scratch,
    head: Parts,
}

impl Parser {
    /// A new connection's parser, with the limits of a default server.
    pub(crate) fn new() -> Self {
        let defaults = ServerLimits::default();
        Self {
            limits: HeadLimits {
                max_headers: defaults.max_headers,
                max_bytes: defaults.max_header_bytes,
                max_body: MAX_BODY,
            },
            scratch: Scratch::default(),
            head: head::empty_head(),
        }
    }

    /// Parses the head at the start of `buf` as the connection's loop does.
    pub(crate) fn parse(&mut self, buf: &mut BytesMut) -> PlainHead {
        match head::parse_request(buf, self.limits, &mut self.scratch, &mut self.head) {
            Parsed::Plain(request) => PlainHead::Plain {
                method: self.head.method.clone(),
                uri: self.head.uri.clone(),
                version: self.head.version,
                // Taken, as the connection's loop clears them after each response.
                headers: std::mem::take(&mut self.head.headers),
                body: request.body,
                close: request.close,
            },
            Parsed::Partial { head } => PlainHead::Partial { head },
            Parsed::HandOver => PlainHead::HandOver,
        }
    }
}

/// Most bytes of body the plain server reads whole; a larger one is handed over.
pub(crate) const MAX_PLAIN_BODY: usize = MAX_BODY;
