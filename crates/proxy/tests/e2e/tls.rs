//! HTTPS listeners: certificates from Secret files, chosen by SNI.

use std::{net::SocketAddr, path::Path, sync::Arc};

use portcullis_config::snapshot::*;
use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::ring::default_provider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// Accepts any certificate: the test checks *which* certificate the gateway chose.
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn write_certificate(root: &Path, name: &str, hosts: &[&str]) -> Vec<u8> {
    let generated = rcgen::generate_simple_self_signed(
        hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
    )
    .expect("certificate");
    let dir = root.join("test").join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("tls.crt"), generated.cert.pem()).expect("write");
    std::fs::write(dir.join("tls.key"), generated.signing_key.serialize_pem()).expect("write");
    generated.cert.der().to_vec()
}

fn certificate(hostname: Option<&str>, secret: &str) -> CertificateConfig {
    CertificateConfig {
        hostname: hostname.map(str::to_owned),
        cert: SecretFile::new("test", secret, "tls.crt"),
        key: SecretFile::new("test", secret, "tls.key"),
    }
}

/// Connects with `sni`, sends a GET, returns the certificate the gateway presented and the
/// response head.
async fn call(addr: SocketAddr, sni: &str) -> (Vec<u8>, String) {
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .expect("certificate");
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    (presented, String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn https_listener_picks_the_certificate_by_sni() {
    let root = secrets().root().to_path_buf();
    let exact = write_certificate(&root, "exact-tls", &["a.example.com"]);
    let wildcard = write_certificate(&root, "wildcard-tls", &["*.b.example.com"]);
    let fallback = write_certificate(&root, "default-tls", &["default.example"]);
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .edit(|s| {
            s.listeners[0].protocol = Protocol::Https;
            s.listeners[0].tls = Some(TlsConfig {
                certificates: vec![
                    certificate(Some("a.example.com"), "exact-tls"),
                    certificate(Some("*.b.example.com"), "wildcard-tls"),
                    certificate(None, "default-tls"),
                ],
            });
        })
        .build();
    let gw = Gateway::start(&snapshot).await;

    let (cert, reply) = call(gw.addr, "a.example.com").await;
    assert_eq!(cert, exact);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"x-forwarded-proto\":\"https\""), "{reply}");
    assert_eq!(call(gw.addr, "x.b.example.com").await.0, wildcard);
    assert_eq!(call(gw.addr, "other.example").await.0, fallback);
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let port = free_port().await;
    let root =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("rotation-{port}"));
    let first = write_certificate(&root, "rotating-tls", &["shop.example"]);
    let a = Upstream::start("a").await;
    let mut snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .edit(|s| {
            s.listeners[0].protocol = Protocol::Https;
            s.listeners[0].tls = Some(TlsConfig {
                certificates: vec![certificate(None, "rotating-tls")],
            });
        })
        .build();
    snapshot.listeners[0].port = port;
    snapshot.seal();
    let plane = Arc::new(
        portcullis_proxy::DataPlane::start(portcullis_proxy::DataPlaneOptions {
            admin: "127.0.0.1:0".parse().expect("addr"),
            listen_host: "127.0.0.1".parse().expect("ip"),
            access_log: false,
            ..Default::default()
        })
        .await
        .expect("start"),
    );
    let secrets = portcullis_proxy::compile::Secrets::new(&root);
    plane.apply(&snapshot, &secrets).await.expect("applies");
    let watch = plane.watch_secrets(secrets);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (cert, reply) = call(addr, "shop.example").await;
    assert_eq!(cert, first);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // The Secret is updated (cert-manager renewed it; the kubelet rewrote the mounted files).
    let second = write_certificate(&root, "rotating-tls", &["shop.example"]);
    assert_ne!(first, second);
    assert!(
        eventually(|| async { call(addr, "shop.example").await.0 == second }).await,
        "the renewed certificate is served"
    );
    assert!(
        call(addr, "shop.example")
            .await
            .1
            .starts_with("HTTP/1.1 200")
    );
    watch.abort();
}

/// An HTTPS upstream with a self-signed certificate for `upstream.test`; answers `secure`.
async fn tls_upstream(root: &Path) -> std::net::SocketAddr {
    let generated =
        rcgen::generate_simple_self_signed(vec!["upstream.test".to_owned()]).expect("certificate");
    let dir = root.join("test").join("upstream-ca");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("ca.crt"), generated.cert.pem()).expect("write");
    let key = rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"secure")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn backends_can_be_reached_over_tls_verified_with_their_ca() {
    let root = secrets().root().to_path_buf();
    let upstream = tls_upstream(&root).await;
    let snapshot = Snap::new()
        .backend_with("secure", &[upstream], |b| {
            b.tls = Some(UpstreamTlsConfig {
                sni: Some("upstream.test".into()),
                ca: Some(SecretFile::new("test", "upstream-ca", "ca.crt")),
            });
        })
        .backend_with("wrong-name", &[upstream], |b| {
            b.tls = Some(UpstreamTlsConfig {
                sni: Some("other.test".into()),
                ca: Some(SecretFile::new("test", "upstream-ca", "ca.crt")),
            });
        })
        .route(
            "good.example",
            prefix("/"),
            to("good", &[(Some("secure"), 1)]),
        )
        .route(
            "bad.example",
            prefix("/"),
            to("bad", &[(Some("wrong-name"), 1)]),
        )
        .build();
    let gw = Gateway::start(&snapshot).await;
    let reply = get(&gw, "good.example", "/").await;
    assert_eq!(reply.status, http::StatusCode::OK);
    assert_eq!(reply.body, "secure");
    // A certificate that does not match the name is a failed connection, never a success.
    assert_ne!(
        get(&gw, "bad.example", "/").await.status,
        http::StatusCode::OK
    );
}
