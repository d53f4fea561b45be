//! The real [`JwksFetch`]: one HTTP/1.1 GET of an issuer's `https` URL over rustls.

use std::sync::Arc;

use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{ClientConfig, RootCertStore, crypto::ring::default_provider};

use super::{
    ConfigError,
    jwks::{BoxFuture, FetchError, JwksFetch, JwksResponse, max_age},
};

/// The largest JWKS document read; issuers publish a few keys, a few KiB.
const MAX_BODY: usize = 512 * 1024;

/// Fetches a JWKS from an `https` URL, verifying the issuer's certificate against the system's
/// roots (or the roots given). Plain `http` is refused: keys fetched in the clear can be
/// replaced by anyone on the path.
pub struct HttpsJwksFetch {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    uri: Uri,
}

impl HttpsJwksFetch {
    /// A fetcher trusting the system's certificate authorities (the container's CA bundle).
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(ConfigError::Setting(
                "no certificate authority found to verify the JWKS URL: the system's CA bundle \
                 is empty or unreadable"
                    .into(),
            ));
        }
        Self::with_roots(url, roots)
    }

    /// A fetcher trusting only `roots` (a private issuer's CA).
    pub fn with_roots(url: &str, roots: RootCertStore) -> Result<Self, ConfigError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ConfigError::Setting(format!("JWKS URL {url:?} is not a URL")))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(ConfigError::Setting(format!(
                "JWKS URL {url:?} must be an https:// URL with a host"
            )));
        }
        let tls = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Setting(format!("TLS for the JWKS URL: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri,
        })
    }

    async fn get(&self) -> Result<JwksResponse, FetchError> {
        let request = http::Request::get(self.uri.clone())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .body(Empty::new())
            .map_err(|e| FetchError(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError(format!("{}: {e:?}", self.uri)))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError(format!(
                "{} answered {}",
                self.uri,
                response.status()
            )));
        }
        let max_age = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError(format!("{}: reading the body: {e}", self.uri)))?
            .to_bytes();
        Ok(JwksResponse { body, max_age })
    }
}

impl JwksFetch for HttpsJwksFetch {
    fn fetch(&self) -> BoxFuture<'_, Result<JwksResponse, FetchError>> {
        Box::pin(self.get())
    }
}

impl std::fmt::Debug for HttpsJwksFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsJwksFetch")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
