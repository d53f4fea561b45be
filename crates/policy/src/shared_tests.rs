use std::time::Duration;

use super::*;
use crate::redis_server::RedisServer;

async fn ping(store: &SharedStore) -> Result<String, SharedError> {
    store
        .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
        .await
}

#[test]
fn refuses_an_address_without_a_port() {
    for address in ["redis", "redis:", "redis:0", ":6379", "redis:http"] {
        let err = SharedStore::new(address, None, DEFAULT_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("host:port"), "{address}: {err}");
    }
}

#[tokio::test]
async fn answers_through_a_real_server_and_backs_off_when_it_dies() {
    let mut server = RedisServer::start();
    let store = SharedStore::new(&server.address(), None, Duration::from_millis(300)).unwrap();
    assert_eq!(ping(&store).await.unwrap(), "PONG");

    server.stop();
    let first = ping(&store).await.unwrap_err();
    assert!(matches!(first, SharedError::Redis { .. }), "{first}");
    // Within the back-off, nothing is tried: the answer is immediate.
    let second = ping(&store).await.unwrap_err();
    assert!(
        matches!(second, SharedError::Unavailable { .. }),
        "{second}"
    );
    assert_eq!(second.label(), "unavailable");
    assert!(store.failures() >= 1);

    // The server comes back on the same port: after the back-off the store reconnects.
    let _server = RedisServer::start_on(server.port());
    let mut answer = ping(&store).await;
    for _ in 0..50 {
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(BACKOFF / 5).await;
        answer = ping(&store).await;
    }
    assert_eq!(answer.unwrap(), "PONG");
}

#[tokio::test]
async fn a_server_that_never_answers_costs_one_timeout() {
    // A listener that accepts and never replies stands in for a hung Redis.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let store = SharedStore::new(&address, None, Duration::from_millis(200)).unwrap();
    let err = ping(&store).await.unwrap_err();
    assert!(
        matches!(err, SharedError::Timeout { .. } | SharedError::Redis { .. }),
        "{err}"
    );
    let err = ping(&store).await.unwrap_err();
    assert!(matches!(err, SharedError::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn authenticates_with_the_password() {
    let server = RedisServer::start();
    assert!(
        server
            .command("CONFIG SET requirepass s3cret")
            .starts_with("+OK")
    );
    let wrong = SharedStore::new(&server.address(), Some("nope"), DEFAULT_TIMEOUT).unwrap();
    assert!(ping(&wrong).await.is_err());
    let right = SharedStore::new(&server.address(), Some("s3cret"), DEFAULT_TIMEOUT).unwrap();
    assert_eq!(ping(&right).await.unwrap(), "PONG");
}
