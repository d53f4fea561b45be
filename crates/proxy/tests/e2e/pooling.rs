//! Upstream HTTP/1.1 connections: kept alive and reused, and never a failed request when a
//! backend closes a connection it no longer wants (after `Connection: close`, after its own
//! keep-alive timeout, or when the client went away mid-body).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use portcullis_proxy::server::ServerLimits;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::*;

/// How the raw backend treats a connection after each answer.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Keeps it open for the next request.
    KeepAlive,
    /// Says `Connection: close` and closes it.
    Close,
    /// Keeps it open, then closes it after this long without a request (a keep-alive
    /// timeout, as Node.js backends have by default).
    IdleClose(Duration),
}

/// A hand-written HTTP/1.1 backend that counts the connections it accepted. `GET /big`
/// answers a large body slowly; `HEAD` and `/empty` answer without a body; `GET /chunked`
/// answers a chunked body with trailers, written in pieces; `GET /legacy` answers as an
/// HTTP/1.0 server (no length, the end of the body is the end of the connection); `POST /echo`
/// reads the request body (sized or chunked) and answers how it came and what it was.
struct RawBackend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl RawBackend {
    async fn start(mode: AfterAnswer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, mode));
            }
        });
        Self { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, mode: AfterAnswer) {
    let mut buf = Vec::new();
    loop {
        let head = match mode {
            AfterAnswer::IdleClose(limit) => {
                match tokio::time::timeout(limit, read_head(&mut stream, &mut buf)).await {
                    Ok(head) => head,
                    Err(_) => return,
                }
            }
            _ => read_head(&mut stream, &mut buf).await,
        };
        let Some(head) = head else { return };
        let close = matches!(mode, AfterAnswer::Close);
        let connection = if close { "close" } else { "keep-alive" };
        if head.starts_with("GET /legacy ") {
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nold ").await;
            let _ = stream.write_all(b"school").await;
            return;
        }
        if head.starts_with("GET /chunked ") {
            let pieces: [&[u8]; 5] = [
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n6;note=x\r\nhel",
                b"lo \r\n",
                b"5\r\nworld\r",
                b"\n0\r\nx-checksum: 42\r\n",
                b"\r\n",
            ];
            for piece in pieces {
                if stream.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            continue;
        }
        if head.starts_with("POST /echo ") {
            let Some((framing, body)) = read_body(&mut stream, &mut buf, &head).await else {
                return;
            };
            let text = format!(
                "{framing} {}: {}",
                body.len(),
                String::from_utf8_lossy(&body)
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        if head.starts_with("GET /big ") {
            let chunk = vec![b'x'; 64 * 1024];
            let start = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
                chunk.len() * 64
            );
            if stream.write_all(start.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..64 {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            let (status, body) = if head.starts_with("GET /empty ") {
                ("204 No Content", "")
            } else {
                ("200 OK", "pong")
            };
            let length = if status.starts_with("204") {
                String::new()
            } else {
                format!("content-length: {}\r\n", body.len())
            };
            let body = if head.starts_with("HEAD ") { "" } else { body };
            let answer =
                format!("HTTP/1.1 {status}\r\n{length}connection: {connection}\r\n\r\n{body}");
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

/// Reads one request head; `None` at end of stream.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads a request body framed as `head` says: ("sized" or "chunked", the bytes).
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    head: &str,
) -> Option<(&'static str, Vec<u8>)> {
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let line = read_line(stream, buf).await?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                read_line(stream, buf).await?;
                return Some(("chunked", body));
            }
            while buf.len() < size + 2 {
                fill(stream, buf).await?;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    }
    let length = content_length(&lower)?;
    while buf.len() < length {
        fill(stream, buf).await?;
    }
    Some(("sized", buf.drain(..length).collect()))
}

async fn read_line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 2);
            return Some(line);
        }
        fill(stream, buf).await?;
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

async fn gateway_to(backend: &RawBackend) -> Gateway {
    let snapshot = Snap::new()
        .backend("raw", &[backend.addr])
        .route("*", prefix("/"), to("r", &[(Some("raw"), 1)]))
        .build();
    // One connection worker: each worker keeps its own idle connections.
    let limits = ServerLimits {
        workers: 1,
        ..ServerLimits::default()
    };
    Gateway::start_with(&snapshot, limits).await
}

#[tokio::test]
async fn sequential_requests_reuse_one_backend_connection() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    for _ in 0..20 {
        let reply = get(&gw, "h", "/").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "pong");
    }
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn answers_without_a_body_leave_the_connection_reusable() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    for _ in 0..5 {
        let head = send(request(&gw, "HEAD", "h", "/")).await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["content-length"], "4");
        let empty = get(&gw, "h", "/empty").await;
        assert_eq!(empty.status, StatusCode::NO_CONTENT);
        assert_eq!(get(&gw, "h", "/").await.body, "pong");
    }
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn a_backend_that_closes_after_each_answer_is_served_on_new_connections() {
    let backend = RawBackend::start(AfterAnswer::Close).await;
    let gw = gateway_to(&backend).await;
    for _ in 0..10 {
        assert_eq!(get(&gw, "h", "/").await.status, StatusCode::OK);
    }
    assert_eq!(backend.accepted(), 10);
}

#[tokio::test]
async fn connections_the_backend_closed_while_idle_are_not_used() {
    // No retry policy: a request sent on a closed connection would fail the client.
    let backend = RawBackend::start(AfterAnswer::IdleClose(Duration::from_millis(50))).await;
    let gw = gateway_to(&backend).await;
    for round in 1..=5 {
        assert_eq!(get(&gw, "h", "/").await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(backend.accepted(), round);
    }
}

#[tokio::test]
async fn a_body_the_client_abandoned_does_not_poison_the_pool() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    // Read the start of a large, slow body, then hang up.
    let mut client = connect(&gw).await;
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut start = [0u8; 1024];
    let n = client.read(&mut start).await.expect("read");
    assert!(String::from_utf8_lossy(&start[..n]).starts_with("HTTP/1.1 200"));
    drop(client);
    // The half-read connection is closed, not handed to the next request.
    for _ in 0..5 {
        let reply = get(&gw, "h", "/").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "pong");
    }
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn a_large_body_arrives_whole() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    let reply = get(&gw, "h", "/big").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), 64 * 64 * 1024);
    assert_eq!(get(&gw, "h", "/").await.body, "pong");
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn chunked_answers_arrive_whole_with_their_trailers_and_keep_the_connection() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    // Raw, so that the chunked framing and trailers the client gets are visible.
    let mut client = connect(&gw).await;
    client
        .write_all(b"GET /chunked HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n")
        .await
        .expect("write");
    let reply = read_until(&mut client, |r| {
        r.ends_with(b"\r\n0\r\nx-checksum: 42\r\n\r\n")
    })
    .await;
    let text = reply.to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    // The trailer comes after the last chunk, not among the head's fields.
    let (head, _) = text.split_once("\r\n\r\n").expect("a head");
    assert!(!head.contains("x-checksum: 42"), "{text}");
    assert!(head.contains("trailer: x-checksum"), "{text}");
    let reply = get(&gw, "h", "/chunked").await;
    assert_eq!(reply.body, "hello world");
    assert_eq!(get(&gw, "h", "/").await.body, "pong");
    assert_eq!(backend.accepted(), 1, "one connection served all three");
}

#[tokio::test]
async fn answers_delimited_by_the_connection_end_arrive_whole() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    for _ in 0..3 {
        let reply = get(&gw, "h", "/legacy").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "old school");
    }
    assert_eq!(backend.accepted(), 3, "such a connection is never reused");
}

#[tokio::test]
async fn request_bodies_reach_the_backend_in_their_framing() {
    let backend = RawBackend::start(AfterAnswer::KeepAlive).await;
    let gw = gateway_to(&backend).await;
    let mut post = request(&gw, "POST", "h", "/echo");
    *post.body_mut() = http_body_util::Full::new(bytes::Bytes::from_static(b"sized body"));
    let reply = send(post).await;
    assert_eq!(reply.body, "sized 10: sized body");
    // A chunked upload is streamed upstream chunked.
    let mut client = connect(&gw).await;
    client
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              4;x=y\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
        )
        .await
        .expect("write");
    let reply = read_until(&mut client, |r| r.ends_with(b"abcdefg")).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("\r\n\r\nchunked 7: abcdefg"), "{reply}");
    assert_eq!(backend.accepted(), 1);
}
