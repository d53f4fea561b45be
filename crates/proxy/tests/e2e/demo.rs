//! `portcullis demo`: the services answer through the gateway.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use portcullis_proxy::demo::{DemoOptions, start};

use crate::support::*;

#[tokio::test]
async fn demo_services_answer_through_the_gateway() {
    let options = DemoOptions {
        port: free_port().await,
        admin: "127.0.0.1:0".parse().expect("addr"),
        access_log: false,
    };
    let demo = start(&options).await.expect("demo starts");
    let base = format!("http://{}", demo.gateway);
    let get = |path: &str| {
        Request::get(format!("{base}{path}"))
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    const KEY: (&str, &str) = ("x-api-key", "demo-key-storefront");
    let keyed = |path: &str| {
        Request::get(format!("{base}{path}"))
            .header(KEY.0, KEY.1)
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    // The front door: the gateway's URL, printed first, answers with an index of the routes
    // (served by the demo's index Route and service) and the lines to try.
    let banner = portcullis_proxy::demo::banner(&demo);
    let first_url = banner
        .lines()
        .find_map(|line| line.split_whitespace().find(|w| w.starts_with("http://")))
        .expect("the banner prints a URL");
    assert_eq!(first_url, base, "the gateway's URL comes first");
    let index = send(get("/")).await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.body);
    let index = index.json();
    let paths: Vec<&str> = index["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["path"].as_str().expect("a path"))
        .collect();
    for path in [
        "PathPrefix /users",
        "PathPrefix /orders",
        "PathPrefix /catalog",
        "Exact /shop",
        "PathPrefix /profile",
    ] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }
    assert_eq!(
        index["routes"][0]["policies"],
        serde_json::json!(["auth ApiKey (header X-API-Key)"]),
        "{index}"
    );
    assert!(index["try"][1].as_str().expect("a line").contains("/users"));
    assert_eq!(send(get("/nowhere")).await.status, StatusCode::NOT_FOUND);
    // /users asks for an API key.
    let refused = send(get("/users")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.contains_key("www-authenticate"));
    let users = send(keyed("/users")).await;
    assert_eq!(users.status, StatusCode::OK);
    assert_eq!(users.json()["users"][0]["name"], "Ada Lovelace");
    let created = send(
        Request::post(format!("{base}/users"))
            .header(KEY.0, KEY.1)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"name":"Grace Hopper"}"#)))
            .expect("req"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["id"], 3);
    assert_eq!(send(keyed("/users/3")).await.json()["name"], "Grace Hopper");
    // /orders: 5 per 10 s, then 429.
    for _ in 0..5 {
        assert_eq!(send(get("/orders")).await.status, StatusCode::OK);
    }
    let limited = send(get("/orders")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    // /catalog reads: a miss, then a hit.
    let catalog = send(get("/catalog/2")).await;
    assert_eq!(catalog.json()["name"], "Bombe");
    assert_eq!(catalog.headers["x-served-by"], "portcullis-demo");
    assert_eq!(catalog.headers["x-cache"], "MISS");
    let again = send(get("/catalog/2")).await;
    assert_eq!(again.headers["x-cache"], "HIT");
    assert_eq!(again.body, catalog.body);
    // The catalog service goes down: past its 10 s the copy stands in, marked STALE; what was
    // never kept answers the service's 503.
    let catalog_service = demo
        .services
        .iter()
        .find(|(name, _)| name == "catalog")
        .map(|(_, addr)| *addr)
        .expect("the catalog service");
    let outage = Request::post(format!("http://{catalog_service}/outage"))
        .body(Full::new(Bytes::new()))
        .expect("a request");
    assert_eq!(send(outage).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let stale = send(get("/catalog/2")).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.headers["x-cache"], "STALE");
    assert_eq!(stale.body, catalog.body);
    let never_kept = send(get("/catalog/3")).await;
    assert_eq!(never_kept.status, StatusCode::SERVICE_UNAVAILABLE);
    let back = Request::delete(format!("http://{catalog_service}/outage"))
        .body(Full::new(Bytes::new()))
        .expect("a request");
    assert_eq!(send(back).await.status, StatusCode::OK);
    let fresh = send(get("/catalog/2")).await;
    assert_eq!(fresh.headers["x-cache"], "MISS");
    let profile = send(get("/profile/1")).await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert_eq!(profile.json()["user"]["name"], "Ada Lovelace");
    assert_eq!(
        profile.json()["orders"]["orders"][0]["item"],
        "Analytical Engine"
    );
    let shop = send(get("/shop")).await;
    assert_eq!(shop.status, StatusCode::FOUND);
    assert!(portcullis_proxy::demo::banner(&demo).contains("curl"));
}
