//! The compiled routing table and the lookup of the entry that serves a request.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{StatusCode, request::Parts};

use super::{
    aggregate::Aggregate,
    matching::{PathMatch, RequestMatch},
};
use crate::{
    fast_hash::FastMap,
    filters::{Filters, Redirect},
    guard::{Engines, Guard},
    host::HostPattern,
    metrics::UnservedLabels,
    upstream::Backend,
};

/// Everything one revision of the config serves. Immutable once built: a reload builds a new
/// table and swaps it in, and requests in flight keep the table they started with.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// The snapshot revision this table was compiled from.
    pub revision: String,
    /// The routes of each port.
    pub listeners: FastMap<u16, ListenerRoutes>,
    /// The backends, keyed `namespace/name`.
    pub backends: FastMap<String, Arc<Backend>>,
    /// How the process drains on SIGTERM.
    pub drain: DrainTiming,
    /// The rules that answer 503 because this build cannot serve them (see [`Unserved`]).
    pub unserved: Vec<Arc<Rule>>,
    /// What else of the snapshot is not served as written (a listener without a usable
    /// certificate, a backend that cannot be built), one line each, for `/config` and the log.
    pub problems: Vec<String>,
    /// The policy engines that carry over to the next table (rate-limit buckets, the cache).
    pub engines: Engines,
}

/// Graceful shutdown timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainTiming {
    /// After SIGTERM, keep accepting this long while `/ready` reports 503.
    pub delay: Duration,
    /// Then let in-flight requests finish for at most this long.
    pub timeout: Duration,
}

impl Default for DrainTiming {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RouteTable {
    /// The routes served on `port`.
    pub fn listener(&self, port: u16) -> Option<&ListenerRoutes> {
        self.listeners.get(&port)
    }

    /// Number of route entries over every listener and virtual host.
    pub fn entry_count(&self) -> usize {
        self.listeners
            .values()
            .flat_map(|l| l.virtual_hosts.iter())
            .map(|v| v.entries.len())
            .sum()
    }

    /// The backend that takes a request meant for `primary`: `primary` itself, or the first of
    /// its `failover` backends (one level) with an available endpoint; `None` when none has one.
    pub fn available_backend<'a>(&'a self, primary: &'a Arc<Backend>) -> Option<&'a Arc<Backend>> {
        std::iter::once(primary)
            .chain(
                primary
                    .spec
                    .failover
                    .iter()
                    .filter_map(|name| self.backends.get(name)),
            )
            .find(|b| b.has_available_endpoint())
    }
}

/// The virtual hosts of one port, indexed by hostname.
#[derive(Debug, Default)]
pub struct ListenerRoutes {
    /// The port.
    pub port: u16,
    /// The TLS config of an HTTPS port (certificates chosen by SNI).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The virtual hosts, most specific first.
    pub virtual_hosts: Vec<VirtualHost>,
    exact: FastMap<String, usize>,
    wildcard: FastMap<String, usize>,
    any: Option<usize>,
}

impl ListenerRoutes {
    /// Builds the hostname index. When two virtual hosts have the same hostname, the first wins.
    pub fn new(port: u16, virtual_hosts: Vec<VirtualHost>) -> Self {
        let mut exact = FastMap::default();
        let mut wildcard = FastMap::default();
        let mut any = None;
        for (index, vhost) in virtual_hosts.iter().enumerate() {
            match &vhost.hostname {
                HostPattern::Exact(name) => {
                    exact.entry(name.clone()).or_insert(index);
                }
                HostPattern::Wildcard(suffix) => {
                    wildcard.entry(suffix.clone()).or_insert(index);
                }
                HostPattern::Any => {
                    any.get_or_insert(index);
                }
            }
        }
        Self {
            port,
            tls: None,
            virtual_hosts,
            exact,
            wildcard,
            any,
        }
    }

    /// The most specific virtual host for `host` (lower case, no port): an exact name, else the
    /// wildcard with the longest suffix, else the catch-all. Never a less specific one when a
    /// more specific one exists but has no matching entry (listener isolation).
    pub fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        if let Some(index) = self.exact.get(host) {
            return self.virtual_hosts.get(*index);
        }
        if !self.wildcard.is_empty() {
            // `a.b.example.com` tries `.b.example.com`, then `.example.com`, then `.com`.
            let mut rest = host;
            while let Some(dot) = rest.find('.') {
                let suffix = &rest[dot..];
                if let Some(index) = self.wildcard.get(suffix) {
                    return self.virtual_hosts.get(*index);
                }
                rest = &rest[dot + 1..];
            }
        }
        self.any.and_then(|index| self.virtual_hosts.get(index))
    }

    /// The entry serving the request with head `req`: the first matching entry of the most
    /// specific virtual host. `path` is the normalized path.
    pub fn route(&self, req: &Parts, host: &str, path: &str) -> Option<&RouteEntry> {
        self.virtual_host(host)?.route(req, path)
    }
}

/// The route entries of one hostname, in precedence order, indexed by the first path segment
/// they can match so that a request looks at its candidates only (5,000 routes cost no more
/// than 5 per request).
#[derive(Debug)]
pub struct VirtualHost {
    /// The hostname pattern.
    pub hostname: HostPattern,
    /// The Gateway listener name (for metrics).
    pub listener: String,
    entries: Vec<RouteEntry>,
    /// Entries (positions, ascending) that can only match paths with this first segment.
    by_segment: FastMap<String, Vec<usize>>,
    /// Entries that can match any first segment (prefix `/`, regular expressions).
    any_segment: Vec<usize>,
}

impl VirtualHost {
    /// Builds the virtual host; `entries` are in precedence order.
    pub fn new(hostname: HostPattern, listener: String, entries: Vec<RouteEntry>) -> Self {
        let mut by_segment: FastMap<String, Vec<usize>> = FastMap::default();
        let mut any_segment = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            match &entry.matcher.path {
                PathMatch::Exact(value) => by_segment
                    .entry(first_segment(value).to_owned())
                    .or_default()
                    .push(position),
                PathMatch::Prefix(prefix) if !prefix.is_empty() => by_segment
                    .entry(first_segment(prefix).to_owned())
                    .or_default()
                    .push(position),
                _ => any_segment.push(position),
            }
        }
        Self {
            hostname,
            listener,
            entries,
            by_segment,
            any_segment,
        }
    }

    /// The entries, in precedence order.
    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }

    /// The first entry, in precedence order, that matches the request.
    pub fn route(&self, req: &Parts, path: &str) -> Option<&RouteEntry> {
        let keyed = self
            .by_segment
            .get(first_segment(path))
            .map_or(&[][..], Vec::as_slice);
        let any = self.any_segment.as_slice();
        // Merge the two ascending candidate lists, keeping precedence order.
        let (mut i, mut j) = (0, 0);
        loop {
            let position = match (keyed.get(i), any.get(j)) {
                (Some(k), Some(a)) if k < a => {
                    i += 1;
                    *k
                }
                (_, Some(a)) => {
                    j += 1;
                    *a
                }
                (Some(k), None) => {
                    i += 1;
                    *k
                }
                (None, None) => return None,
            };
            let entry = self.entries.get(position)?;
            if entry.matcher.matches(req, path) {
                return Some(entry);
            }
        }
    }
}

/// `api` for `/api/v1` and `/api`; empty for `/`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

/// One match of one rule.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    /// The conditions.
    pub matcher: RequestMatch,
    /// What happens to a matching request (shared by every entry of the rule).
    pub rule: Arc<Rule>,
}

impl RouteEntry {
    /// The path prefix this entry matched with, for `ReplacePrefixMatch`.
    pub fn matched_prefix(&self) -> Option<&str> {
        match &self.matcher.path {
            PathMatch::Prefix(prefix) => Some(prefix),
            _ => None,
        }
    }
}

/// One rule of one Route.
#[derive(Debug)]
pub struct Rule {
    /// `namespace/name` of the Route: the `route` label of metrics and access logs.
    pub route: Arc<str>,
    /// The rule's index in the Route.
    pub index: usize,
    /// Request and response filters.
    pub filters: Filters,
    /// Where the request goes.
    pub action: Action,
    /// Timeouts and retries.
    pub policy: Policy,
    /// Authentication, rate limiting and caching, before the action.
    pub guard: Guard,
}

/// What a rule does with a matching request.
#[derive(Debug)]
pub enum Action {
    /// Forward to a backend chosen by weight.
    Forward(WeightedBackends),
    /// Call several backends in parallel and merge their JSON bodies.
    Aggregate(Aggregate),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with this status and no body.
    Status(StatusCode),
    /// Answer 503: this build cannot serve the rule as written (fail closed, per rule).
    Unserved(Unserved),
}

/// Why a rule is not served, and what a request that reaches it is told.
#[derive(Debug)]
pub struct Unserved {
    /// Every reason in full, each `field: message` (for `/config` and the log).
    pub reasons: Vec<String>,
    /// The labels of the metrics counting the rule: its Route, index and first reason.
    pub labels: UnservedLabels,
    /// The response body: the reasons a client may read (no Secret or file names).
    pub body: Bytes,
}

/// A weighted choice among backends; shares without a (valid) backend answer 500.
#[derive(Debug, Default)]
pub struct WeightedBackends {
    choices: Vec<WeightedBackend>,
    total: u64,
}

/// One weighted share.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    /// `namespace/name`, or `None` when the reference did not resolve.
    pub backend: Option<String>,
    /// The relative share.
    pub weight: u32,
}

impl WeightedBackends {
    /// Builds the choice; shares of weight 0 are dropped.
    pub fn new(choices: Vec<WeightedBackend>) -> Self {
        let choices: Vec<_> = choices.into_iter().filter(|c| c.weight > 0).collect();
        let total = choices.iter().map(|c| u64::from(c.weight)).sum();
        Self { choices, total }
    }

    /// The backend for a request, given a uniform random number. `None` means 500: no share at
    /// all, or the share of an invalid backend.
    pub fn pick(&self, random: u64) -> Option<&str> {
        if self.total == 0 {
            return None;
        }
        if self.choices.len() == 1 {
            return self.choices[0].backend.as_deref();
        }
        let mut point = random % self.total;
        for choice in &self.choices {
            let weight = u64::from(choice.weight);
            if point < weight {
                return choice.backend.as_deref();
            }
            point -= weight;
        }
        None
    }
}

/// Timeouts, retries and the request body limit of a rule.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The whole transaction, retries included (`None`: no limit).
    pub request_timeout: Option<Duration>,
    /// One attempt (`None`: no limit).
    pub backend_timeout: Option<Duration>,
    /// The longest an endpoint may stay silent during an attempt (`None`: no limit).
    pub backend_idle: Option<Duration>,
    /// Retries, when configured.
    pub retry: Option<RetryPolicy>,
    /// The largest request body accepted, in bytes; a larger one gets 413.
    pub max_request_body: u64,
    /// The `Upgrade` protocols tunnelled, lower case (`websocket` unless the rule says).
    pub upgrades: Vec<String>,
}

/// How long an endpoint may stay silent when no `backendIdle` is configured (nginx's
/// `proxy_read_timeout`): a backend that accepts a request and never answers does not hold
/// the client for ever.
pub const DEFAULT_BACKEND_IDLE: Duration = Duration::from_secs(60);

impl Default for Policy {
    fn default() -> Self {
        Self {
            request_timeout: None,
            backend_timeout: None,
            backend_idle: Some(DEFAULT_BACKEND_IDLE),
            retry: None,
            max_request_body: portcullis_api::policy::DEFAULT_MAX_REQUEST_BODY_BYTES,
            upgrades: vec!["websocket".to_owned()],
        }
    }
}

/// Retries of failed attempts. Connect failures are always retried (the request was never
/// sent); see [`crate::forward::retryable`].
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Retry on 502, 503, 504 and attempt timeouts.
    pub on_gateway_error: bool,
    /// Retry on any 5xx.
    pub on_server_error: bool,
    /// Also retry these statuses (HTTPRoute's `codes`, 400-599; empty for most rules).
    pub codes: Box<[u16]>,
    /// Wait before the first retry; doubled each time, with jitter.
    pub backoff: Duration,
    /// Retries in flight may be at most this percentage of the requests in flight to the
    /// backend (with a floor of a few, so a quiet backend can still retry).
    pub budget_percent: u32,
    /// Also retry methods that are not idempotent.
    pub non_idempotent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RequestMatch;

    fn vhost(pattern: &str, tag: &str) -> VirtualHost {
        VirtualHost::new(HostPattern::parse(pattern), tag.to_owned(), Vec::new())
    }

    fn entry(path: PathMatch, route: &str) -> RouteEntry {
        RouteEntry {
            matcher: RequestMatch {
                path,
                ..RequestMatch::default()
            },
            rule: Arc::new(Rule {
                route: Arc::from(route),
                index: 0,
                filters: Filters::default(),
                action: Action::Status(StatusCode::OK),
                policy: Policy::default(),
                guard: Guard::default(),
            }),
        }
    }

    #[test]
    fn indexed_lookup_keeps_precedence_across_segment_and_catch_all_entries() {
        let v = VirtualHost::new(
            HostPattern::Any,
            "l".into(),
            vec![
                entry(PathMatch::Exact("/api/exact".into()), "exact"),
                entry(PathMatch::regex("/api/re.*").expect("regex"), "regex"),
                entry(PathMatch::prefix("/api/v1"), "v1"),
                entry(PathMatch::prefix("/"), "root"),
                entry(PathMatch::prefix("/api"), "api-after-root"),
                entry(PathMatch::Exact("/".into()), "slash"),
            ],
        );
        let route = |path: &str| {
            let (req, ()) = http::Request::builder()
                .uri(path)
                .body(())
                .expect("request")
                .into_parts();
            v.route(&req, path).map(|e| e.rule.route.to_string())
        };
        assert_eq!(route("/api/exact").as_deref(), Some("exact"));
        assert_eq!(route("/api/regex").as_deref(), Some("regex"));
        assert_eq!(route("/api/v1/users").as_deref(), Some("v1"));
        // `/` comes before the later `/api` prefix in precedence order: it wins.
        assert_eq!(route("/api/other").as_deref(), Some("root"));
        assert_eq!(route("/").as_deref(), Some("root"));
        assert_eq!(route("/elsewhere").as_deref(), Some("root"));
    }

    #[test]
    fn first_segments() {
        assert_eq!(first_segment("/api/v1"), "api");
        assert_eq!(first_segment("/api"), "api");
        assert_eq!(first_segment("/"), "");
        assert_eq!(first_segment("/a%2Fb/c"), "a%2Fb");
    }

    fn listener() -> ListenerRoutes {
        ListenerRoutes::new(
            80,
            vec![
                vhost("foo.example.com", "exact"),
                vhost("*.b.example.com", "long-wildcard"),
                vhost("*.example.com", "wildcard"),
                vhost("*", "any"),
            ],
        )
    }

    fn chosen(host: &str) -> Option<String> {
        listener().virtual_host(host).map(|v| v.listener.clone())
    }

    #[test]
    fn most_specific_virtual_host_wins() {
        assert_eq!(chosen("foo.example.com").as_deref(), Some("exact"));
        assert_eq!(chosen("x.b.example.com").as_deref(), Some("long-wildcard"));
        assert_eq!(chosen("b.example.com").as_deref(), Some("wildcard"));
        assert_eq!(chosen("a.c.example.com").as_deref(), Some("wildcard"));
        assert_eq!(chosen("example.com").as_deref(), Some("any"));
    }

    #[test]
    fn without_catch_all_unknown_hosts_have_no_virtual_host() {
        let l = ListenerRoutes::new(80, vec![vhost("*.example.com", "w")]);
        assert!(l.virtual_host("example.com").is_none());
        assert!(l.virtual_host("other.org").is_none());
    }

    #[test]
    fn weights_split_traffic_and_zero_weight_gets_nothing() {
        let w = WeightedBackends::new(vec![
            WeightedBackend {
                backend: Some("a".into()),
                weight: 70,
            },
            WeightedBackend {
                backend: Some("zero".into()),
                weight: 0,
            },
            WeightedBackend {
                backend: None,
                weight: 30,
            },
        ]);
        let picks: Vec<_> = (0..100).map(|r| w.pick(r)).collect();
        assert_eq!(picks.iter().filter(|p| **p == Some("a")).count(), 70);
        assert_eq!(picks.iter().filter(|p| p.is_none()).count(), 30);
        assert!(WeightedBackends::new(Vec::new()).pick(3).is_none());
    }
}
