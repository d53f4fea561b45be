//! Sending one request to one endpoint of a backend.
//!
//! HTTP/1.1 requests go over the endpoint's pooled connections, driven by the request's own task
//! ([`super::h1`]). HTTP/2 backends, whose connections many requests share at once, and protocol
//! upgrades, whose connection outlives the response, go through hyper's pooled client, which
//! runs each connection in a task of its own.

use std::sync::Arc;

use http::{Request, Response, Uri, uri::Scheme};
use tower::Service;

use super::{
    Backend, Endpoint, Protocol,
    h1::{H1Conn, SendError},
};
use crate::body::{self, Body};

/// Why a request got no response from an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// No connection could be made: the request was not sent.
    Connect,
    /// The connection failed after the request may have been sent.
    Reset,
}

impl Backend {
    /// Sends `request` (origin-form URI) to `endpoint` and returns the response head, with a
    /// body that streams from the endpoint. `upgrade` marks a protocol-upgrade handshake.
    pub async fn send(
        &self,
        endpoint: &Arc<Endpoint>,
        mut request: Request<Body>,
        upgrade: bool,
    ) -> Result<Response<Body>, SendFailure> {
        if upgrade || self.spec.protocol == Protocol::Http2 {
            return Box::pin(self.send_pooled(endpoint, request)).await;
        }
        let mut conn = self.idle_or_connect(endpoint).await?;
        loop {
            match conn.send(request, endpoint).await {
                Ok(response) => return Ok(response.map(Body::Upstream)),
                // The backend closed an idle connection as it was taken: nothing was sent.
                Err(SendError::Unsent(unsent)) => {
                    request = *unsent;
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

    /// Through hyper's pooled client, which needs the absolute URI.
    async fn send_pooled(
        &self,
        endpoint: &Endpoint,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, SendFailure> {
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(endpoint.authority.clone());
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| SendFailure::Reset)?;
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
