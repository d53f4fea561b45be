//! Sending one request to one endpoint of a backend.
//!
//! HTTP/1.1 requests go over the endpoint's pooled connections, driven by the request's own task
//! ([`super::h1`]). HTTP/2 backends, whose connections many requests share at once, and protocol
//! upgrades, whose connection outlives the response, go through hyper's pooled client, which
//! runs each connection in a task of its own.

use std::sync::Arc;

use http::{
    HeaderMap, Method, Request, Response, Uri, Version,
    uri::{PathAndQuery, Scheme},
};
use tower::Service;

use super::{
    Backend, Endpoint, Protocol,
    h1::{H1Conn, SendError},
};
use crate::body::{self, Body};

/// The parts of the upstream request that every attempt repeats. An HTTP/1.1 attempt writes its
/// head from here, borrowed; only the pooled client (HTTP/2, upgrades) needs a `Request` built.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// The method.
    pub method: Method,
    /// Path and query sent upstream.
    pub path_and_query: PathAndQuery,
    /// Headers sent upstream, besides `forwarded`.
    pub headers: HeaderMap,
    /// The `X-Forwarded-*` fields sent upstream, which `headers` does not hold.
    pub forwarded: crate::forwarded::Forwarded,
    /// A protocol-upgrade handshake (WebSocket): its connection outlives the response.
    pub upgrade: bool,
    /// The response's fields may be relayed as they came (`Relayed`), for a server that writes
    /// them so: an HTTP/1.1 response's header map then holds none of them.
    pub relay: bool,
}

impl RequestTemplate {
    /// The request for `endpoint` in `protocol`, with the absolute URI hyper's pooled client
    /// needs, `headers` (the template's, taken or copied) and the forwarded fields.
    pub fn request(
        &self,
        endpoint: &Endpoint,
        protocol: Protocol,
        body: Body,
        headers: HeaderMap,
    ) -> Result<Request<Body>, http::Error> {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(endpoint.authority.clone())
            .path_and_query(self.path_and_query.clone())
            .build()?;
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = match protocol {
            Protocol::Http1 => Version::HTTP_11,
            Protocol::Http2 => Version::HTTP_2,
        };
        *request.headers_mut() = headers;
        self.forwarded.apply(request.headers_mut());
        Ok(request)
    }
}

/// Why a request got no response from an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// No connection could be made: the request was not sent.
    Connect,
    /// The connection failed after the request may have been sent.
    Reset,
}

impl Backend {
    /// Sends the request `template` describes, with `body`, to `endpoint` and returns the
    /// response head, with a body that streams from the endpoint. `last`: no other attempt
    /// follows, so the template's header map may be taken (it then holds the response's
    /// fields, or the request's on the pooled client) instead of copied.
    pub async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        template: &mut RequestTemplate,
        mut body: Body,
        last: bool,
    ) -> Result<Response<Body>, SendFailure> {
        if template.upgrade || self.spec.protocol == Protocol::Http2 {
            let request = self.pooled_request(endpoint, template, body, last)?;
            return Box::pin(self.send_pooled(endpoint, request)).await;
        }
        let mut conn = self.idle_or_connect(endpoint).await?;
        loop {
            match conn.send(template, body, last, endpoint).await {
                Ok(response) => return Ok(response),
                // The backend closed an idle connection as it was taken: nothing was sent.
                Err(SendError::Unsent(unsent)) => {
                    body = unsent;
                    conn = self.idle_or_connect(endpoint).await?;
                }
                Err(SendError::Failed(error)) => {
                    tracing::debug!(%error, endpoint = %endpoint.address, "upstream exchange failed");
                    return Err(SendFailure::Reset);
                }
            }
        }
    }

    /// The endpoint's most recently used idle connection, or a new one.
    async fn idle_or_connect(&self, endpoint: &Endpoint) -> Result<Box<H1Conn>, SendFailure> {
        match endpoint.idle.take() {
            Some(conn) => Ok(conn),
            // Boxed: connecting is rare, and its future would enlarge every request's.
            None => Box::pin(self.connect(endpoint)).await,
        }
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<H1Conn>, SendFailure> {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(endpoint.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| SendFailure::Connect)?;
        let io = self.connector.clone().call(uri).await.map_err(|error| {
            tracing::debug!(%error, endpoint = %endpoint.address, "upstream connect failed");
            SendFailure::Connect
        })?;
        Ok(H1Conn::new(io.into_inner()))
    }

    /// The request for hyper's pooled client, with the absolute URI it needs.
    fn pooled_request(
        &self,
        endpoint: &Endpoint,
        template: &mut RequestTemplate,
        body: Body,
        last: bool,
    ) -> Result<Request<Body>, SendFailure> {
        let headers = if last {
            std::mem::take(&mut template.headers)
        } else {
            template.headers.clone()
        };
        template
            .request(endpoint, self.spec.protocol, body, headers)
            .map_err(|_| SendFailure::Reset)
    }

    /// Through hyper's pooled client.
    async fn send_pooled(
        &self,
        endpoint: &Endpoint,
        request: Request<Body>,
    ) -> Result<Response<Body>, SendFailure> {
        match self.client().request(request).await {
            Ok(response) => Ok(response.map(body::incoming)),
            Err(error) if error.is_connect() => Err(SendFailure::Connect),
            Err(error) => {
                tracing::debug!(%error, endpoint = %endpoint.address, "upstream exchange failed");
                Err(SendFailure::Reset)
            }
        }
    }
}
