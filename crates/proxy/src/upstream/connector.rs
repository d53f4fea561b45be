//! Connections to endpoints: plain TCP, or TLS (rustls) when the ServiceBackend asks for it,
//! with the server name and CA bundle it names and ALPN matching its protocol.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::Uri;
use hyper_util::{
    client::legacy::connect::{Connected, Connection, HttpConnector},
    rt::TokioIo,
};
use rustls::{
    ClientConfig, RootCertStore,
    crypto::ring::default_provider,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Protocol;
use crate::body::BoxError;

/// Where the system's CA bundle is on Debian-like systems (and in the distroless image).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system's CA bundle, read once for every backend that trusts it (reloads happen on the
/// async runtime, where a file read blocks).
fn system_bundle() -> Result<&'static [u8], String> {
    static BUNDLE: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    BUNDLE
        .get_or_init(|| {
            std::fs::read(SYSTEM_CA_BUNDLE).map_err(|e| {
                format!("no CA given and the system bundle {SYSTEM_CA_BUNDLE} cannot be read: {e}")
            })
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// TLS towards a backend's endpoints.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// TLS that verifies endpoints against `ca_pem` (the system bundle when `None`), sending
    /// and verifying `sni` (the endpoint's host when `None`).
    pub fn new(
        sni: Option<&str>,
        ca_pem: Option<&[u8]>,
        protocol: Protocol,
    ) -> Result<Self, String> {
        let pem = match ca_pem {
            Some(pem) => pem,
            None => system_bundle()?,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("CA bundle: {e}"))?;
            roots.add(cert).map_err(|e| format!("CA bundle: {e}"))?;
        }
        if roots.is_empty() {
            return Err("CA bundle: no PEM certificate found".to_owned());
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = match protocol {
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
            Protocol::Http2 => vec![b"h2".to_vec()],
        };
        let server_name = sni
            .map(|name| {
                ServerName::try_from(name.to_owned()).map_err(|e| format!("sni {name:?}: {e}"))
            })
            .transpose()?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

/// Connects to endpoints, with TLS when configured.
#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    http: HttpConnector,
    tls: Option<UpstreamTls>,
}

impl UpstreamConnector {
    /// A connector over `http` (which sets timeouts and TCP options).
    pub fn new(http: HttpConnector, tls: Option<UpstreamTls>) -> Self {
        Self { http, tls }
    }
}

/// hyper's pooled client (HTTP/2, upgrades) reads and writes through `TokioIo`; the HTTP/1.1
/// exchanges use the `UpstreamIo` inside directly.
impl tower::Service<Uri> for UpstreamConnector {
    type Response = TokioIo<UpstreamIo>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<UpstreamIo>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.http.call(uri.clone());
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(UpstreamIo::Plain(tcp)));
            };
            let name = match tls.server_name {
                Some(name) => name,
                None => {
                    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
                    ServerName::try_from(host.to_owned())?
                }
            };
            let stream = tls.connector.connect(name, tcp).await?;
            Ok(TokioIo::new(UpstreamIo::Tls(Box::new(stream))))
        })
    }
}

/// A connection to an endpoint.
#[derive(Debug)]
pub enum UpstreamIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Plain(io) => io.connected(),
            UpstreamIo::Tls(io) => {
                let (tcp, session) = io.get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl tokio::io::AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(io) => io.is_write_vectored(),
            UpstreamIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
