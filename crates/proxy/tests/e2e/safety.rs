//! Hostile input: smuggling, header floods, garbage. None of it may panic or pass through.

use std::time::Duration;

use http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::support::*;

async fn gateway() -> (Upstream, Gateway) {
    one_upstream(portcullis_proxy::server::ServerLimits::default()).await
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused_and_cannot_smuggle_a_second_request() {
    let (a, gw) = gateway().await;
    for framing in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "transfer-encoding: chunked\r\ncontent-length: 4\r\n",
    ] {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: h\r\n{framing}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        let reply = raw(&gw, request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        assert!(
            reply.contains("both Content-Length and Transfer-Encoding"),
            "{reply}"
        );
        // One answer, then the connection is closed: the bytes after the body are never read as
        // a request.
        assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{reply}");
        assert!(
            reply.to_lowercase().contains("connection: close"),
            "{reply}"
        );
        assert!(!reply.contains("/smuggled"), "{reply}");
    }
    assert_eq!(a.hits(), 0, "a refused request reached the backend");
}

#[tokio::test]
async fn a_request_body_coded_other_than_chunked_alone_is_refused_before_any_backend() {
    // RFC 9112 §6.1: 501 for a transfer coding the gateway does not decode (the body would
    // reach the backend still gzip-coded with nothing to say so), 400 for chunked twice; the
    // connection closes either way, so nothing after the head is read as a request.
    let (a, gw) = gateway().await;
    for (coding, status) in [
        ("gzip, chunked", "501"),
        ("deflate, chunked", "501"),
        ("gzip\r\nTransfer-Encoding: chunked", "501"),
        ("chunked, chunked", "400"),
    ] {
        let request = format!(
            "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {coding}\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        let reply = raw(&gw, request.as_bytes()).await;
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{coding:?}: {reply}"
        );
        assert!(!reply.contains("smuggled"), "{coding:?}: {reply}");
    }
    assert_eq!(a.hits(), 0, "no refused request reached the backend");
    // Exactly chunked, in any case, is served.
    let reply = raw(
        &gw,
        b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn a_conflicting_request_pipelined_after_a_good_one_is_the_one_refused() {
    let (a, gw) = gateway().await;
    let reply = raw(
        &gw,
        b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /second HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n\
          GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .await;
    let statuses: Vec<&str> = reply
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| reply.get(at + 9..at + 12))
        .collect();
    assert_eq!(statuses, ["200", "400"], "{reply}");
    assert!(reply.contains("\"/first\""), "{reply}");
    assert!(!reply.contains("/second"), "{reply}");
    assert!(!reply.contains("/smuggled"), "{reply}");
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn a_chunked_post_and_a_pipelined_get_on_one_connection_both_get_answers() {
    let (a, gw) = gateway().await;
    // The chunked body spells out a head with both framings: it is body, not a request.
    let body = "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n{:x}\r\n{body}\r\n0\r\n\r\n\
         GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let reply = raw(&gw, request.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert_eq!(reply.matches("HTTP/1.1 200 ").count(), 2, "{reply}");
    assert!(!reply.contains("HTTP/1.1 400"), "{reply}");
    let upload = reply.find("\"/upload\"").expect("the POST was answered");
    let after = reply.find("\"/after\"").expect("the GET was answered");
    assert!(upload < after, "{reply}");
    // The backend got the whole body, framing text included.
    assert!(
        reply.contains(r#""body":"helloContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n""#),
        "{reply}"
    );
    assert_eq!(a.hits(), 2);
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let (_a, gw) = gateway().await;
    let mut many = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(raw(&gw, &many).await.starts_with("HTTP/1.1 431"));
    let mut large = b"GET / HTTP/1.1\r\nHost: h\r\nx-big: ".to_vec();
    large.extend(std::iter::repeat_n(b'a', 100 * 1024));
    large.extend_from_slice(b"\r\n\r\n");
    let reply = raw(&gw, &large).await;
    assert!(
        reply.starts_with("HTTP/1.1 431") || reply.is_empty(),
        "{reply}"
    );
}

#[tokio::test]
async fn garbage_and_odd_requests_get_errors_and_the_gateway_keeps_serving() {
    let (a, gw) = gateway().await;
    // Refused: the connection closes with nothing, or a 4xx; never a 5xx, never the upstream.
    for input in [
        &b"\x00\x01\x02\xff\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /%%% HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    ] {
        let reply = raw(&gw, input).await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(a.hits(), 0, "no refused request reached the upstream");
    // Odd but valid: served, with the path the upstream sees made safe.
    for (input, seen_path) in [
        // Absolute-form: the path of the URI is what is forwarded.
        (
            &b"GET http://other/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"[..],
            "/x",
        ),
        // Dot segments are removed and cannot climb above the root.
        (
            b"GET /a/../../../../etc/passwd HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            "/etc/passwd",
        ),
    ] {
        let reply = raw(&gw, input).await;
        let input = String::from_utf8_lossy(input);
        assert!(
            reply.starts_with("HTTP/1.1 200 "),
            "{input:?} got {reply:?}"
        );
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let seen: serde_json::Value = serde_json::from_str(body).expect("the upstream's JSON");
        assert_eq!(seen["path"], seen_path, "{input:?} got {reply:?}");
    }
    assert_eq!(a.hits(), 2);
    assert_eq!(get(&gw, "h", "/still-alive").await.status, StatusCode::OK);
    assert_eq!(a.hits(), 3);
}

#[tokio::test]
async fn an_absolute_form_target_is_forwarded_with_the_host_it_was_routed_by() {
    // Only `other.example` is routed: Host `h` alone finds nothing.
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("other.example", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    let by_host = raw(
        &gw,
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(by_host.starts_with("HTTP/1.1 404 "), "{by_host:?}");
    let reply = raw(
        &gw,
        b"GET http://other.example/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply:?}");
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let seen: serde_json::Value = serde_json::from_str(body).expect("the upstream's JSON");
    // RFC 9112 §3.2.2: the target's authority replaces Host; routing used it too.
    assert_eq!(seen["headers"]["host"], "other.example", "{seen}");
    assert_eq!(
        seen["headers"]["x-forwarded-host"], "other.example",
        "{seen}"
    );
}

#[tokio::test]
async fn spoofed_forwarded_fields_from_an_untrusted_client_are_replaced() {
    let (_a, gw) = gateway().await;
    let mut req = request(&gw, "GET", "h", "/");
    req.headers_mut()
        .insert("x-forwarded-for", "6.6.6.6".parse().expect("v"));
    req.headers_mut()
        .insert("forwarded", "for=6.6.6.6;host=evil".parse().expect("v"));
    let reply = send(req).await;
    assert_eq!(
        reply.seen_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    // RFC 7239's field the same way: the client's is gone, the gateway's element says who.
    assert_eq!(
        reply.seen_header("forwarded").as_deref(),
        Some("for=127.0.0.1;proto=http;host=h")
    );
}

#[tokio::test]
async fn a_slow_client_is_cut_off_by_the_header_read_timeout() {
    let (a, gw) = gateway_with_timeouts(Duration::from_millis(200), Duration::from_secs(60)).await;
    let mut stream = connect(&gw).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n")
        .await
        .expect("write");
    // Closed without an answer (no 408), well before the idle timeout.
    assert_eq!(
        until_closed(&mut stream).await.as_deref(),
        Some(""),
        "the slow client got nothing back"
    );
    assert_eq!(a.hits(), 0);
}

async fn gateway_with_timeouts(header_read: Duration, idle: Duration) -> (Upstream, Gateway) {
    one_upstream(portcullis_proxy::server::ServerLimits {
        header_read_timeout: header_read,
        idle_timeout: idle,
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_request_whose_first_bytes_look_like_the_http2_preface_is_served_whole() {
    let (a, gw) = gateway().await;
    let mut stream = connect(&gw).await;
    // "P" could begin the HTTP/2 preface: the gateway waits for more before deciding, and the
    // bytes it read to decide still reach HTTP/1.
    stream.write_all(b"P").await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(
            b"UT /put HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        )
        .await
        .expect("write");
    let reply = until_closed(&mut stream).await.expect("answered");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""path":"/put""#), "{reply}");
    // The "P" read to decide is the method's first letter, not lost.
    assert!(reply.contains(r#""method":"PUT""#), "{reply}");
    assert!(reply.contains(r#""body":"ok""#), "{reply}");
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn after_an_upgrade_the_backend_refused_the_connection_ends_with_the_answer() {
    // The framing scanner stops following at an upgrade; a connection it no longer follows must
    // not carry more requests (no smuggling defence, no header read timeout for them).
    let (a, gw) = gateway_with_timeouts(Duration::from_millis(200), Duration::from_secs(60)).await;
    let mut stream = connect(&gw).await;
    stream
        .write_all(
            b"GET /not-ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\
              GET /slow HTTP/1.1\r\nHo",
        )
        .await
        .expect("write");
    let reply = until_closed(&mut stream)
        .await
        .expect("closed after the answer, not left open until the idle timeout");
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("\r\nconnection: close\r\n"), "{reply}");
    assert!(reply.contains(r#""path":"/not-ws""#), "{reply}");
    assert_eq!(a.hits(), 1, "the trickled request was not served");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off_by_the_header_read_timeout() {
    let (a, gw) = gateway_with_timeouts(Duration::from_millis(200), Duration::from_secs(60)).await;
    let mut stream = connect(&gw).await;
    assert_eq!(until_closed(&mut stream).await.as_deref(), Some(""));
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn a_keep_alive_connection_waits_for_its_next_request_until_the_idle_timeout() {
    let (_a, gw) = gateway_with_timeouts(Duration::from_millis(200), Duration::from_secs(60)).await;
    let mut stream = connect(&gw).await;
    assert!(get_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Well past the header read timeout: between requests only the idle timeout counts.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(get_on(&mut stream).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let (_a, gw) = gateway_with_timeouts(Duration::from_secs(10), Duration::from_millis(300)).await;
    let mut stream = connect(&gw).await;
    assert!(get_on(&mut stream).await.starts_with("HTTP/1.1 200"));
    assert_eq!(until_closed(&mut stream).await.as_deref(), Some(""));
}

/// Sends a GET on `stream` and reads its whole response (keeping the connection open).
async fn get_on(stream: &mut tokio::net::TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    read_until(stream, sized_answer_complete).await
}

#[tokio::test]
async fn at_the_connection_cap_a_new_client_waits_until_a_connection_closes() {
    let (a, gw) = one_upstream(portcullis_proxy::server::ServerLimits {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let mut first = connect(&gw).await;
    let mut second = connect(&gw).await;
    assert!(get_on(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut second).await.starts_with("HTTP/1.1 200"));

    // The kernel queues the third client; the gateway does not take it while two are open.
    let third = tokio::spawn(async move {
        let mut stream = connect(&gw).await;
        let reply = get_on(&mut stream).await;
        (gw, reply, stream)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "served beyond the cap");
    assert_eq!(a.hits(), 2);

    drop(first);
    let (gw, reply, _third) = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(gw.plane.server().open_connections(), 2);
    drop(second);
}

/// The status line of each answer on one connection.
fn statuses(reply: &str) -> Vec<&str> {
    reply
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &reply[at + 9..at + 12])
        .collect()
}

#[tokio::test]
async fn a_request_whose_host_is_missing_repeated_or_invalid_is_refused_before_any_backend() {
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, with two, or with one that is
    // not a valid host[:port]; the same for an absolute-form target's authority, userinfo
    // included. Both servers (the plain fast path and hyper's, which a chunked body takes).
    let (a, gw) = gateway().await;
    for (head, why) in [
        ("GET / HTTP/1.1\r\n", "no Host"),
        (
            "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n",
            "two",
        ),
        (
            "GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n",
            "two",
        ),
        ("GET / HTTP/1.1\r\nHost: \r\n", "empty"),
        ("GET / HTTP/1.1\r\nHost: a b\r\n", "a space"),
        ("GET / HTTP/1.1\r\nHost: a.example/evil\r\n", "a slash"),
        ("GET / HTTP/1.1\r\nHost: user@a.example\r\n", "userinfo"),
        ("GET / HTTP/1.1\r\nHost: a.example:port\r\n", "a bad port"),
        ("GET / HTTP/1.1\r\nHost: a\\b\r\n", "a backslash"),
        (
            "GET http://u:p@a.example/ HTTP/1.1\r\nHost: a.example\r\n",
            "absolute-form userinfo",
        ),
        (
            "GET http://a.example:99999/ HTTP/1.1\r\nHost: a.example\r\n",
            "absolute-form port",
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
            "no Host, chunked",
        ),
        (
            "POST / HTTP/1.1\r\nHost: a/b\r\nTransfer-Encoding: chunked\r\n",
            "bad Host, chunked",
        ),
    ] {
        let request = format!("{head}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n");
        let reply = raw(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&reply), ["400"], "{why}: {reply}");
        assert!(
            reply.to_lowercase().contains("connection: close"),
            "{why}: {reply}"
        );
    }
    assert_eq!(a.hits(), 0, "a refused request reached the backend");
    // HTTP/1.0 may leave Host out; an absolute-form target's authority replaces Host, and the
    // backend receives that one, once.
    let reply = raw(&gw, b"GET /text/old HTTP/1.0\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.0 200 "), "{reply}");
    let reply = raw(
        &gw,
        b"GET http://routed.example/echo HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), ["200"], "{reply}");
    assert!(reply.contains(r#""host":"routed.example""#), "{reply}");
    assert!(
        reply.contains(r#""x-forwarded-host":"routed.example""#),
        "{reply}"
    );
}

#[tokio::test]
async fn a_wildcard_host_matches_only_a_valid_name() {
    let a = Upstream::start("a").await;
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*.example.com", prefix("/"), to("r", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start_with(&snapshot, Default::default()).await;
    let reply = raw(
        &gw,
        b"GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), ["200"], "{reply}");
    for host in ["evil/x.example.com", "u@x.example.com", "x y.example.com"] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let reply = raw(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&reply), ["400"], "{host}: {reply}");
    }
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn a_request_target_outside_rfc_3986_is_refused_and_utf8_is_carried_byte_for_byte() {
    let (a, gw) = gateway().await;
    for target in [
        "/a\\b", "/a\"b", "/a^b", "/a`b", "/a{b}", "/a|b", "/a%zz", "/a?q=%", "/a?q=\\",
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        let reply = raw(&gw, request.as_bytes()).await;
        assert_eq!(statuses(&reply), ["400"], "{target}: {reply}");
    }
    for (request, why) in [
        (&b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"[..], "a space"),
        (
            b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n",
            "a control character",
        ),
        (b"GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", "DEL"),
    ] {
        let reply = raw(&gw, request).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{why}: {reply}");
    }
    assert_eq!(a.hits(), 0, "a refused request reached the backend");
    // Normalized, but in the client's own bytes.
    let reply = raw(
        &gw,
        "GET /caf\u{e9}//x/../y?q=\u{e9} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            .as_bytes(),
    )
    .await;
    assert_eq!(statuses(&reply), ["200"], "{reply}");
    assert!(reply.contains("\"path\":\"/caf\u{e9}/y\""), "{reply}");
    assert!(reply.contains("\"query\":\"q=\u{e9}\""), "{reply}");
}

#[tokio::test]
async fn a_response_coded_other_than_chunked_is_refused_never_relabelled() {
    // A backend answering `Transfer-Encoding: gzip, chunked`: the gateway undoes only the
    // chunked coding, so relaying the body would hand the client gzip bytes labelled as
    // nothing. It answers 502 instead.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                          4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    let snapshot = Snap::new()
        .backend("coded", &[addr])
        .route("*", prefix("/"), to("r", &[(Some("coded"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;
    let reply = raw(
        &gw,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 502"), "{reply}");
}
