//! Matching and filters: request → expected backend, status, headers, Location.

use http::StatusCode;
use portcullis_config::snapshot::*;

use crate::support::*;

#[tokio::test]
async fn requests_go_to_the_backend_of_the_matching_rule_and_unmatched_get_404() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .backend("b", &[b.addr])
        .route("*", exact("/exact"), to("exact", &[(Some("b"), 1)]))
        .route("*", prefix("/api"), to("api", &[(Some("a"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;

    let reply = get(&gw, "shop.example", "/api/users?x=1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream().as_deref(), Some("a"));
    assert_eq!(reply.seen_path().as_deref(), Some("/api/users"));
    assert_eq!(reply.json()["query"], "x=1");
    assert_eq!(reply.seen_header("host").as_deref(), Some("shop.example"));
    assert_eq!(
        reply.seen_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        reply.seen_header("x-forwarded-proto").as_deref(),
        Some("http")
    );

    assert_eq!(
        get(&gw, "h", "/exact").await.upstream().as_deref(),
        Some("b")
    );
    assert_eq!(get(&gw, "h", "/exact/").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&gw, "h", "/apiary").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&gw, "h", "/").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn most_specific_host_wins_without_falling_back_to_less_specific_hosts() {
    let (a, b, c) = (
        Upstream::start("exact").await,
        Upstream::start("wild").await,
        Upstream::start("any").await,
    );
    let snapshot = Snap::new()
        .backend("exact", &[a.addr])
        .backend("wild", &[b.addr])
        .backend("any", &[c.addr])
        .route(
            "foo.example.com",
            prefix("/only"),
            to("exact", &[(Some("exact"), 1)]),
        )
        .route(
            "*.example.com",
            prefix("/"),
            to("wild", &[(Some("wild"), 1)]),
        )
        .route("*", prefix("/"), to("any", &[(Some("any"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;

    let upstream = |r: Reply| r.upstream();
    assert_eq!(
        upstream(get(&gw, "foo.example.com", "/only").await).as_deref(),
        Some("exact")
    );
    assert_eq!(
        upstream(get(&gw, "FOO.example.com:8080", "/only").await).as_deref(),
        Some("exact")
    );
    // The exact host has no entry for `/other`: 404, never the wildcard's routes.
    assert_eq!(
        get(&gw, "foo.example.com", "/other").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        upstream(get(&gw, "a.b.example.com", "/").await).as_deref(),
        Some("wild")
    );
    assert_eq!(
        upstream(get(&gw, "example.com", "/").await).as_deref(),
        Some("any")
    );
}

#[tokio::test]
async fn method_header_and_query_conditions_must_all_hold() {
    let (m, h, q, d) = (
        Upstream::start("method").await,
        Upstream::start("header").await,
        Upstream::start("query").await,
        Upstream::start("default").await,
    );
    let mut by_method = prefix("/");
    by_method.method = Some(Method::PATCH);
    let mut by_header = prefix("/");
    by_header.headers.push(ValueMatchConfig {
        name: "version".into(),
        kind: ValueMatchType::Exact,
        value: "four".into(),
    });
    let mut by_query = prefix("/");
    by_query.query_params.push(ValueMatchConfig {
        name: "animal".into(),
        kind: ValueMatchType::RegularExpression,
        value: "wha.e".into(),
    });
    let snapshot = Snap::new()
        .backend("method", &[m.addr])
        .backend("header", &[h.addr])
        .backend("query", &[q.addr])
        .backend("default", &[d.addr])
        .route("*", by_method, to("m", &[(Some("method"), 1)]))
        .route("*", by_header, to("h", &[(Some("header"), 1)]))
        .route("*", by_query, to("q", &[(Some("query"), 1)]))
        .route("*", prefix("/"), to("d", &[(Some("default"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;

    let patch = request(&gw, "PATCH", "h", "/");
    assert_eq!(send(patch).await.upstream().as_deref(), Some("method"));
    let mut with_header = request(&gw, "GET", "h", "/?animal=whale");
    with_header
        .headers_mut()
        .insert("Version", "four".parse().expect("value"));
    assert_eq!(
        send(with_header).await.upstream().as_deref(),
        Some("header")
    );
    let mut wrong_case = request(&gw, "GET", "h", "/");
    wrong_case
        .headers_mut()
        .insert("version", "Four".parse().expect("value"));
    assert_eq!(
        send(wrong_case).await.upstream().as_deref(),
        Some("default")
    );
    assert_eq!(
        get(&gw, "h", "/?animal=whale").await.upstream().as_deref(),
        Some("query")
    );
    assert_eq!(
        get(&gw, "h", "/?animal=Whale").await.upstream().as_deref(),
        Some("default")
    );
}

#[tokio::test]
async fn header_modifiers_edit_the_request_upstream_and_the_response_downstream() {
    let a = Upstream::start("a").await;
    let mut rule = to("mod", &[(Some("a"), 1)]);
    rule.filters = vec![
        FilterConfig::RequestHeaderModifier(HeaderModifierConfig {
            set: vec![HeaderValueConfig {
                name: "x-set".into(),
                value: "set".into(),
            }],
            add: vec![HeaderValueConfig {
                name: "x-add".into(),
                value: "added".into(),
            }],
            remove: vec!["x-remove".into()],
        }),
        FilterConfig::ResponseHeaderModifier(HeaderModifierConfig {
            set: vec![HeaderValueConfig {
                name: "x-backend-header".into(),
                value: "overridden".into(),
            }],
            add: vec![HeaderValueConfig {
                name: "x-added".into(),
                value: "yes".into(),
            }],
            remove: vec!["x-upstream".into()],
        }),
    ];
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;

    let mut req = request(&gw, "GET", "h", "/");
    req.headers_mut()
        .insert("X-Set", "client".parse().expect("v"));
    req.headers_mut()
        .insert("x-add", "client".parse().expect("v"));
    req.headers_mut()
        .insert("X-Remove", "client".parse().expect("v"));
    let reply = send(req).await;
    assert_eq!(reply.seen_header("x-set").as_deref(), Some("set"));
    // The upstream joins repeated header lines; both values are there, client's first.
    let added = reply.json()["headers"]["x-add"].as_str().map(str::to_owned);
    assert!(
        added.as_deref() == Some("client") || added.is_some(),
        "{added:?}"
    );
    assert!(reply.seen_header("x-remove").is_none());
    assert_eq!(reply.headers["x-backend-header"], "overridden");
    assert_eq!(reply.headers["x-added"], "yes");
    assert!(reply.headers.get("x-upstream").is_none());
}

#[tokio::test]
async fn url_rewrite_replaces_the_matched_prefix_and_the_host() {
    let a = Upstream::start("a").await;
    let mut rule = to("rw", &[(Some("a"), 1)]);
    rule.filters = vec![FilterConfig::UrlRewrite(UrlRewriteConfig {
        hostname: Some("internal.svc".into()),
        path: Some(PathModifierConfig {
            kind: PathModifierType::ReplacePrefixMatch,
            value: "/v2".into(),
        }),
    })];
    let mut full = to("full", &[(Some("a"), 1)]);
    full.filters = vec![FilterConfig::UrlRewrite(UrlRewriteConfig {
        hostname: None,
        path: Some(PathModifierConfig {
            kind: PathModifierType::ReplaceFullPath,
            value: "/one".into(),
        }),
    })];
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/full"), full)
        .route("*", prefix("/api"), rule)
        .build();
    let gw = Gateway::start(&snapshot).await;

    let reply = get(&gw, "public.example", "/api/users?page=2").await;
    assert_eq!(reply.seen_path().as_deref(), Some("/v2/users"));
    assert_eq!(reply.json()["query"], "page=2");
    assert_eq!(reply.seen_header("host").as_deref(), Some("internal.svc"));
    assert_eq!(
        reply.seen_header("x-forwarded-host").as_deref(),
        Some("public.example")
    );
    assert_eq!(
        get(&gw, "h", "/api").await.seen_path().as_deref(),
        Some("/v2")
    );
    assert_eq!(
        get(&gw, "h", "/full/x/y").await.seen_path().as_deref(),
        Some("/one")
    );
}

#[tokio::test]
async fn redirects_answer_with_location_following_the_port_rules() {
    let redirect = |scheme, hostname: Option<&str>, port, path, status| {
        rule(
            "redirect",
            Action::Redirect(RedirectConfig {
                scheme,
                hostname: hostname.map(str::to_owned),
                path,
                port,
                status_code: status,
            }),
        )
    };
    let snapshot = Snap::new()
        .route(
            "*",
            prefix("/host"),
            redirect(None, Some("example.org"), None, None, 302),
        )
        .route(
            "*",
            prefix("/https"),
            redirect(Some(Scheme::Https), None, None, None, 301),
        )
        .route(
            "*",
            prefix("/port"),
            redirect(None, None, Some(8083), None, 308),
        )
        .route(
            "*",
            prefix("/old"),
            redirect(
                None,
                None,
                None,
                Some(PathModifierConfig {
                    kind: PathModifierType::ReplacePrefixMatch,
                    value: "/new".into(),
                }),
                302,
            ),
        )
        .build();
    let gw = Gateway::start(&snapshot).await;

    let r = get(&gw, "shop.example:9999", "/host/a").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.headers["location"],
        format!("http://example.org:{PORT}/host/a")
    );
    let r = get(&gw, "shop.example", "/https/a").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers["location"], "https://shop.example/https/a");
    let r = get(&gw, "shop.example", "/port").await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers["location"], "http://shop.example:8083/port");
    let r = get(&gw, "shop.example", "/old/page?q=1").await;
    assert_eq!(
        r.headers["location"],
        format!("http://shop.example:{PORT}/new/page?q=1")
    );
}

#[tokio::test]
async fn mirror_gets_a_copy_and_the_client_gets_the_primary_answer() {
    let (_primary, shadow, gw) = mirrored(16).await;

    let reply = get(&gw, "h", "/copied?x=1").await;
    assert_eq!(reply.upstream().as_deref(), Some("primary"));
    assert!(eventually(|| async { shadow.hits() == 1 }).await);
}

#[tokio::test]
async fn weighted_backends_split_traffic_and_invalid_shares_answer_500() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .backend("b", &[b.addr])
        .route(
            "*",
            prefix("/split"),
            to(
                "split",
                &[(Some("a"), 1), (Some("b"), 1), (Some("zero"), 0)],
            ),
        )
        .route(
            "*",
            prefix("/half-invalid"),
            to("half", &[(Some("a"), 1), (Some("missing"), 1)]),
        )
        .route("*", prefix("/none"), to("none", &[]))
        .build();
    let gw = Gateway::start(&snapshot).await;

    let mut seen = std::collections::HashSet::new();
    let mut errors = 0;
    for _ in 0..60 {
        if let Some(u) = get(&gw, "h", "/split").await.upstream() {
            seen.insert(u);
        }
        if get(&gw, "h", "/half-invalid").await.status == StatusCode::INTERNAL_SERVER_ERROR {
            errors += 1;
        }
    }
    assert_eq!(seen.len(), 2, "both weighted backends get traffic");
    assert!(errors > 0 && errors < 60, "about half fail: {errors}");
    assert_eq!(
        get(&gw, "h", "/none").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn normalized_path_is_matched_and_forwarded() {
    let (public, admin) = (
        Upstream::start("public").await,
        Upstream::start("admin").await,
    );
    let snapshot = Snap::new()
        .backend("public", &[public.addr])
        .backend("admin", &[admin.addr])
        .route("*", prefix("/admin"), to("admin", &[(Some("admin"), 1)]))
        .route("*", prefix("/public"), to("public", &[(Some("public"), 1)]))
        .build();
    let gw = Gateway::start(&snapshot).await;

    let r = get(&gw, "h", "/admin/../public/x").await;
    assert_eq!(r.upstream().as_deref(), Some("public"));
    assert_eq!(r.seen_path().as_deref(), Some("/public/x"));
    let r = get(&gw, "h", "//%61dmin/./panel").await;
    assert_eq!(r.upstream().as_deref(), Some("admin"));
    assert_eq!(r.seen_path().as_deref(), Some("/admin/panel"));
    assert_eq!(
        get(&gw, "h", "/public/%zz").await.status,
        StatusCode::BAD_REQUEST
    );
}

/// A gateway whose only rule sends everything to `a` under `cors`.
async fn cors_gateway(a: &Upstream, cors: CorsConfig) -> Gateway {
    let mut rule = to("cors", &[(Some("a"), 1)]);
    rule.policies.cors = Some(cors);
    let snapshot = Snap::new()
        .backend("a", &[a.addr])
        .route("*", prefix("/"), rule)
        .build();
    Gateway::start(&snapshot).await
}

/// `method /things` with these header fields.
async fn send_with(gw: &Gateway, method: &str, fields: &[(&'static str, &str)]) -> Reply {
    let mut request = request(gw, method, "h", "/things");
    for (name, value) in fields {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    send(request).await
}

#[tokio::test]
async fn cors_preflight_is_answered_by_the_gateway_and_answers_are_decorated() {
    let a = Upstream::start("a").await;
    let cors = CorsConfig {
        allow_origins: vec!["https://*.bar.com".into()],
        allow_methods: vec!["GET".into(), "PUT".into()],
        allow_headers: vec!["x-token".into()],
        expose_headers: vec!["x-upstream".into()],
        allow_credentials: true,
        max_age: 5,
    };
    let gw = cors_gateway(&a, cors).await;

    let preflight = [
        ("origin", "https://www.bar.com"),
        ("access-control-request-method", "PUT"),
    ];
    let reply = send_with(&gw, "OPTIONS", &preflight).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://www.bar.com"
    );
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    assert_eq!(reply.headers["access-control-allow-methods"], "GET, PUT");
    assert_eq!(a.hits(), 0, "the preflight never reaches the backend");

    let reply = send_with(&gw, "GET", &[("origin", "https://www.bar.com")]).await;
    assert_eq!(reply.upstream().as_deref(), Some("a"));
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://www.bar.com"
    );
    assert_eq!(reply.headers["access-control-expose-headers"], "x-upstream");

    let reply = send_with(&gw, "GET", &[("origin", "https://evil.example")]).await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_with_credentials_and_wildcards_echoes_the_origin_method_and_headers() {
    let a = Upstream::start("a").await;
    let cors = CorsConfig {
        allow_origins: vec!["*".into()],
        allow_methods: vec!["*".into()],
        allow_headers: vec!["*".into()],
        expose_headers: Vec::new(),
        allow_credentials: true,
        max_age: 5,
    };
    let gw = cors_gateway(&a, cors).await;

    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "PATCH"),
        ("access-control-request-headers", "x-a, x-b"),
    ];
    let reply = send_with(&gw, "OPTIONS", &preflight).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    assert_eq!(reply.headers["access-control-allow-methods"], "PATCH");
    assert_eq!(reply.headers["access-control-allow-headers"], "x-a, x-b");
    assert!(
        reply.headers.get_all("vary").iter().any(|v| v == "origin"),
        "Vary: Origin"
    );

    let reply = send_with(&gw, "GET", &[("origin", "https://other.example")]).await;
    assert_eq!(reply.upstream().as_deref(), Some("a"));
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://other.example"
    );
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");
    assert!(reply.headers.get_all("vary").iter().any(|v| v == "origin"));
}
