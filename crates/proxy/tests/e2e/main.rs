//! End-to-end tests of the data plane over real sockets on 127.0.0.1, with real upstream
//! servers.

mod aggregate;
mod client_faults;
mod demo;
mod forwarding;
mod global_rate;
mod http1;
mod lifecycle;
mod policies;
mod pooling;
mod process;
#[path = "../../../policy/tests/support/redis_server.rs"]
mod redis_server;
mod routing;
mod safety;
mod shared_cache;
mod support;
mod tls;
