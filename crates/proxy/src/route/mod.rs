//! The routing table: an immutable, compiled form of a config snapshot that answers "which rule
//! serves this request?" without allocating in the common case.

mod aggregate;
mod matching;
mod table;

pub use aggregate::{Aggregate, AggregatePart, PartTarget};

pub use matching::{HeaderCondition, PathMatch, QueryCondition, RequestMatch, ValueMatch};
pub use table::{
    Action, DEFAULT_BACKEND_IDLE, DrainTiming, ListenerRoutes, Policy, RetryPolicy, RouteEntry,
    RouteTable, Rule, Unserved, VirtualHost, WeightedBackend, WeightedBackends,
};
