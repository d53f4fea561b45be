//! HTTP/1.1 as clients speak it on the wire: pipelining, requests of every kind on one
//! connection (plain ones served by Portcullis's own server, the others after it hands the
//! connection to hyper), bodyless answers, `Connection: close`, streamed and split messages.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use portcullis_proxy::server::ServerLimits;

use crate::support::*;

async fn gateway() -> (Upstream, Gateway) {
    one_upstream(ServerLimits::default()).await
}

/// What the gateway sent until it closed `stream`, which it must within 5 s.
async fn closed(stream: &mut TcpStream) -> String {
    until_closed(stream)
        .await
        .expect("the gateway closed the connection within 5 s")
}

/// The position of each needle in `text`, in the order given; fails when one is missing.
fn positions(text: &str, needles: &[&str]) -> Vec<usize> {
    needles
        .iter()
        .map(|needle| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing from {text}"))
        })
        .collect()
}

#[tokio::test]
async fn pipelined_requests_of_every_kind_are_answered_in_order_on_one_connection() {
    let (a, gw) = gateway().await;
    // A sized body the plain server reads whole; a chunked one hands the connection to hyper,
    // which serves the rest.
    let request = b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n\
        POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nsized\
        POST /three HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n0\r\n\r\n\
        GET /four HTTP/1.1\r\nHost: h\r\n\r\n\
        GET /five HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let reply = raw(&gw, request).await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 5, "{reply}");
    let at = positions(
        &reply,
        &[
            r#""path":"/one""#,
            r#""path":"/two""#,
            r#""path":"/three""#,
            r#""path":"/four""#,
            r#""path":"/five""#,
        ],
    );
    assert!(at.is_sorted(), "answered out of order: {reply}");
    assert!(reply.contains(r#""body":"sized""#), "{reply}");
    assert!(reply.contains(r#""body":"hello""#), "{reply}");
    assert_eq!(a.hits(), 5);
}

#[tokio::test]
async fn a_request_arriving_in_pieces_is_served_whole() {
    let (a, gw) = gateway().await;
    let mut stream = connect(&gw).await;
    for piece in [
        &b"GET /pie"[..],
        b"ces HTTP/1.1\r\nHo",
        b"st: h\r\nX-Split: y",
        b"es\r\nConnection: close\r\n\r",
        b"\n",
    ] {
        stream.write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = closed(&mut stream).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains(r#""path":"/pieces""#), "{reply}");
    assert!(reply.contains(r#""x-split":"yes""#), "{reply}");
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn answers_carry_one_date_and_connection_close_is_honoured() {
    let (a, gw) = gateway().await;
    // A request pipelined after the one that says close is not served.
    let reply = raw(
        &gw,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n\
          GET /after HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.contains(r#""path":"/""#),
        "the backend's answer: {reply}"
    );
    let head = reply.split("\r\n\r\n").next().unwrap_or_default();
    assert!(head.contains("\r\nconnection: close"), "{head}");
    // The backend's Date is relayed, not doubled (the gateway adds one only when it is missing).
    assert_eq!(head.matches("\r\ndate: ").count(), 1, "{head}");
    assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{reply}");
    assert_eq!(a.hits(), 1, "nothing after the close was served");
}

#[tokio::test]
async fn bodyless_answers_keep_their_length_fields_but_send_no_body() {
    let (_a, gw) = gateway().await;
    let reply = raw(
        &gw,
        b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n\
          GET /status/304 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let answers: Vec<&str> = reply.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 3, "{reply}");
    // HEAD: the length of the body a GET would get, and no body.
    assert!(answers[0].starts_with("200 OK\r\n"), "{reply}");
    let length = content_length(answers[0]);
    assert!(length.is_some_and(|n| n > 100), "{reply}");
    assert!(answers[0].ends_with("\r\n\r\n"), "{reply}");
    assert!(answers[1].starts_with("204 No Content\r\n"), "{reply}");
    assert!(!answers[1].contains("content-length"), "{reply}");
    assert!(answers[1].ends_with("\r\n\r\n"), "{reply}");
    assert!(answers[2].starts_with("304 Not Modified\r\n"), "{reply}");
    assert!(answers[2].ends_with("\r\n\r\n"), "{reply}");
}

#[tokio::test]
async fn a_body_the_backend_streams_reaches_the_client_chunked_as_it_comes() {
    let (_a, gw) = gateway().await;
    let mut stream = connect(&gw).await;
    stream
        // Held back 2.5 s: long enough that a loaded machine still reads the first chunk
        // alone, short enough for `closed`'s 5 s.
        .write_all(b"GET /stall/2500 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    // The first chunk arrives while the backend still holds the end of the body back.
    let mut first = Vec::new();
    while !String::from_utf8_lossy(&first).contains("head arrives in time") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the first chunk came before the body ended")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&first));
        first.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&first).into_owned();
    // Passed on as it came: the body's end was not there yet.
    assert!(!head.contains("\r\n0\r\n\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    // The end follows, and the connection carries the next request.
    stream
        .write_all(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let whole = head + &closed(&mut stream).await;
    assert!(
        whole.contains("head arrives in time; \r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{whole}"
    );
    assert!(whole.contains(r#""path":"/next""#), "{whole}");
}

#[tokio::test]
async fn a_client_that_gives_up_frees_its_place_at_the_backend() {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend_with("a", &[a.addr], one_at_a_time)
        .route("*", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    // The only request the backend may have in flight: the client hangs up before the answer.
    let mut slow = connect(&gw).await;
    slow.write_all(b"GET /delay/30000 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    assert!(eventually(|| async { a.hits() == 1 }).await);
    assert_eq!(
        get(&gw, "h", "/").await.status,
        http::StatusCode::SERVICE_UNAVAILABLE,
        "the backend's only place is taken"
    );
    drop(slow);
    // Its place is given back at once, not when the backend would have answered.
    assert!(
        eventually(|| async { get(&gw, "h", "/").await.status == http::StatusCode::OK }).await,
        "the abandoned request still holds the backend's only place"
    );
}

#[tokio::test]
async fn a_large_answer_arrives_whole_and_the_connection_carries_on() {
    let (_a, gw) = gateway().await;
    // The backend echoes the request's fields: a 60 KiB field makes a larger answer.
    let big = "b".repeat(60 * 1024);
    let request = format!(
        "GET /big HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n\
         GET /small HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    );
    let reply = raw(&gw, request.as_bytes()).await;
    let (head, rest) = reply.split_once("\r\n\r\n").expect("a head");
    let length = content_length(head).expect("a length");
    assert!(length > big.len(), "{head}");
    let (body, next) = rest.split_at(length);
    assert!(body.contains(&big), "the answer arrived whole");
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    assert!(next.contains(r#""path":"/small""#), "{next}");
}

#[tokio::test]
async fn a_body_sent_after_its_head_reaches_the_backend_whole() {
    let (a, gw) = gateway().await;
    let mut stream = connect(&gw).await;
    for piece in [
        &b"PUT /later HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"[..],
        b"hello",
        b" world",
        b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    ] {
        stream.write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = closed(&mut stream).await;
    assert!(reply.contains(r#""body":"hello world""#), "{reply}");
    let at = positions(&reply, &[r#""path":"/later""#, r#""path":"/next""#]);
    assert!(at.is_sorted(), "{reply}");
    assert_eq!(a.hits(), 2);
}

#[tokio::test]
async fn a_body_too_large_to_read_whole_is_streamed_and_the_connection_carries_on() {
    let (a, gw) = gateway().await;
    let body = "x".repeat(200 * 1024);
    let request = format!(
        "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}\
         GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let reply = raw(&gw, request.as_bytes()).await;
    assert_eq!(
        reply.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{}",
        reply.get(..300).unwrap_or(&reply)
    );
    assert!(reply.contains(&body), "the backend got the whole body");
    let at = positions(&reply, &[r#""path":"/big""#, r#""path":"/after""#]);
    assert!(at.is_sorted(), "answered out of order");
    assert_eq!(a.hits(), 2);
}
