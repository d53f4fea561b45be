//! HAProxy in front of the gateway replicas, configured the way a user puts a load balancer in
//! front of Portcullis: health checks on each replica's readiness endpoint, retries of failed
//! connections on another replica, and no replay of a request that may have done its work.

use std::{
    fs,
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::load::REPLICA_HEADER;
use crate::support::control_plane::eventually;

/// One gateway replica as the load balancer sees it.
pub struct Server {
    /// Its name (in the load balancer's [`REPLICA_HEADER`]).
    pub name: String,
    /// Where it serves clients.
    pub addr: SocketAddr,
    /// Its admin listener, where `/ready` is.
    pub admin: SocketAddr,
}

/// The HAProxy configuration for `servers`, listening on `front`.
///
/// - `option httpchk GET /ready` on the admin port every 200 ms, down after one failure: a
///   draining replica answers 503 there at once and keeps accepting for `drain.delay`, so the
///   load balancer stops sending to it long before it stops accepting.
/// - `retries 3`, `option redispatch 1` and `retry-on conn-failure empty-response`: a request
///   that could not be sent (refused connection) goes to another replica, and so does a GET
///   whose replica closed the connection without answering (a replica killed with requests in
///   flight).
/// - `http-request disable-l7-retry unless METH_GET`: the layer-7 retry (`empty-response`)
///   is for GET and HEAD only. A POST whose replica died after forwarding it may already have
///   run at the backend; HAProxy would re-send it to another replica and the backend would run
///   it twice. A connection failure is still retried for every method: nothing was sent.
pub fn config(front: SocketAddr, servers: &[Server]) -> String {
    let mut config = format!(
        "global
    maxconn 4096

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend gateway
    bind {front}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 200ms fall 1 rise 2
    # Never replay a request that may have run: see the drill's documentation.
    http-request disable-l7-retry unless METH_GET
    http-response set-header {REPLICA_HEADER} %[srv_name]
"
    );
    for server in servers {
        config.push_str(&format!(
            "    server {} {} check addr {} port {}\n",
            server.name,
            server.addr,
            server.admin.ip(),
            server.admin.port()
        ));
    }
    config
}

/// HAProxy, killed when dropped.
pub struct HaProxy {
    child: Child,
    /// Where clients send their requests.
    pub front: SocketAddr,
}

impl HaProxy {
    /// Starts HAProxy with [`config`] in `dir` and waits until it answers on `front`.
    ///
    /// # Panics
    /// If HAProxy is not installed (`make drill` and `make test` install Debian's package) or
    /// refuses the configuration.
    pub async fn start(dir: &Path, front: SocketAddr, servers: &[Server]) -> Self {
        let file = dir.join("haproxy.cfg");
        fs::write(&file, config(front, servers)).expect("the HAProxy configuration is written");
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run haproxy ({e}): `make drill` installs Debian's package")
            });
        assert!(
            check.status.success(),
            "HAProxy refuses the drill's configuration:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = fs::File::create(dir.join("haproxy.log")).expect("the HAProxy log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the HAProxy log"))
            .stderr(log)
            .spawn()
            .expect("HAProxy starts");
        eventually("HAProxy to listen", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(front).await.ok().map(drop)
        })
        .await;
        Self { child, front }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
