//! A real TLS issuer on loopback, with a certificate from rcgen.

use std::{net::SocketAddr, time::Duration};

use rustls::{ServerConfig, pki_types::PrivateKeyDer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::auth::{JwksSource, RefreshSchedule, jwt::tests::JWKS};

struct Issuer {
    addr: SocketAddr,
    roots: RootCertStore,
}

/// Serves `status` with `headers` and `body` to every connection, over TLS for `localhost`.
async fn issuer(status: &'static str, headers: &'static str, body: &'static [u8]) -> Issuer {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Issuer { addr, roots }
}

fn url(issuer: &Issuer) -> String {
    format!(
        "https://localhost:{}/.well-known/jwks.json",
        issuer.addr.port()
    )
}

#[tokio::test]
async fn a_jwks_is_fetched_over_tls_with_its_max_age() {
    let issuer = issuer("200 OK", "cache-control: public, max-age=300\r\n", JWKS).await;
    let fetch = HttpsJwksFetch::with_roots(&url(&issuer), issuer.roots.clone()).unwrap();
    let response = fetch.fetch().await.unwrap();
    assert_eq!(response.body, JWKS);
    assert_eq!(response.max_age, Some(Duration::from_secs(300)));

    let source = JwksSource::remote(Arc::new(fetch), RefreshSchedule::default());
    assert_eq!(source.refresh().await, Some(Ok(Duration::from_secs(300))));
    // The fixture's oct key is not taken from a URL.
    assert_eq!(source.key_count(), 4);
}

#[tokio::test]
async fn an_issuer_with_an_untrusted_certificate_is_not_believed() {
    let issuer = issuer("200 OK", "", JWKS).await;
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(other.cert.der().clone()).unwrap();
    let fetch = HttpsJwksFetch::with_roots(&url(&issuer), roots).unwrap();
    assert!(fetch.fetch().await.is_err());
}

#[tokio::test]
async fn an_error_status_is_a_failed_fetch() {
    let issuer = issuer("404 Not Found", "", b"nope").await;
    let fetch = HttpsJwksFetch::with_roots(&url(&issuer), issuer.roots.clone()).unwrap();
    let error = fetch.fetch().await.unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
}

#[test]
fn only_https_urls_are_accepted() {
    for url in [
        "http://issuer.example/jwks",
        "issuer.example/jwks",
        "https:///jwks",
    ] {
        let error = HttpsJwksFetch::with_roots(url, RootCertStore::empty()).unwrap_err();
        assert!(error.to_string().contains("JWKS URL"), "{url}: {error}");
    }
}
