//! What the compiler found wrong or noteworthy, per object and field, and the attachment results
//! the operator turns into status conditions.
//!
//! Reasons use the Gateway API vocabulary (see [`reason`]), so `Route.status.parents[].conditions`
//! read like those of an HTTPRoute.

use std::fmt;

use portcullis_api::route::ParentRef;

use crate::snapshot::ObjectKey;

/// Condition types and reasons, as constants (Gateway API names where the concept exists).
pub mod reason {
    /// Condition type: the object was accepted (for a Route: on one parent).
    pub const ACCEPTED: &str = "Accepted";
    /// Condition type: every reference of the object resolved.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";

    /// A referenced ServiceBackend does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    /// A referenced ServiceBackend exists but is itself invalid, so it cannot receive traffic.
    pub const INVALID_BACKEND: &str = "InvalidBackend";
    /// No listener of the parent admits the Route's namespace.
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    /// No listener selected by the parentRef matches `sectionName` and `port`.
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    /// None of the Route's hostnames intersects a hostname of an admitting listener.
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    /// A value is not supported (e.g. a regular expression that does not compile).
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    /// Filters that cannot be combined, or a filter incompatible with the rule's matches.
    pub const INCOMPATIBLE_FILTERS: &str = "IncompatibleFilters";
    /// A reference to another namespace that is not allowed.
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// A value the schema should have refused (e.g. an unparseable duration), or a combination
    /// of settings that cannot be served.
    pub const INVALID: &str = "Invalid";
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something is not served as written: a Route not accepted, a share answering 500, a
    /// setting ignored for safety.
    Error,
    /// Served, but probably not what the author meant (e.g. a duplicate that is ignored).
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// The kinds of object a diagnostic can be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A `Gateway`.
    Gateway,
    /// A `Route`.
    Route,
    /// A `ServiceBackend`.
    ServiceBackend,
}

impl Kind {
    /// The kind as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gateway => "Gateway",
            Kind::Route => "Route",
            Kind::ServiceBackend => "ServiceBackend",
        }
    }
}

/// The object a diagnostic is about: `Kind/namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The object's kind.
    pub kind: Kind,
    /// Its namespace and name.
    pub key: ObjectKey,
}

impl ObjectRef {
    /// A reference to the object `kind` named `key`.
    pub fn new(kind: Kind, key: ObjectKey) -> Self {
        Self { kind, key }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.key)
    }
}

/// One finding about one field of one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The object.
    pub object: ObjectRef,
    /// The field path, like `spec.rules[0].backendRefs[1]`.
    pub field: String,
    /// Error or warning.
    pub severity: Severity,
    /// A reason from [`reason`].
    pub reason: &'static str,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `Kind/namespace/name: field: message`, the line format of `portcullis check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

/// A condition's status and reason, with a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionResult {
    /// The condition's status.
    pub status: bool,
    /// A reason from [`reason`] (`Accepted` / `ResolvedRefs` when `status` is true).
    pub reason: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl ConditionResult {
    fn ok(reason: &'static str, message: &str) -> Self {
        Self {
            status: true,
            reason,
            message: message.to_owned(),
        }
    }
}

/// The outcome of one `parentRef` of one Route that names the compiled Gateway: the Route's
/// `status.parents[]` entry for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteParentResult {
    /// The Route.
    pub route: ObjectKey,
    /// Index of the parentRef in `spec.parentRefs`.
    pub parent_ref_index: usize,
    /// The parentRef as written.
    pub parent_ref: ParentRef,
    /// `Accepted`: whether the Route attached through this parentRef.
    pub accepted: ConditionResult,
    /// `ResolvedRefs`: whether all of the Route's backend references resolved.
    pub resolved_refs: ConditionResult,
    /// The names of the listeners the Route attached to through this parentRef.
    pub listeners: Vec<String>,
}

/// The outcome for one Gateway listener: its `status.listeners[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerResult {
    /// The listener's name.
    pub name: String,
    /// Accepted Routes attached to it.
    pub attached_routes: u32,
}

/// Everything the compiler reports besides the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Findings, sorted by object, field, severity, reason and message.
    pub items: Vec<Diagnostic>,
    /// One entry per (Route, parentRef naming this Gateway), sorted by Route then index.
    pub parents: Vec<RouteParentResult>,
    /// One entry per Gateway listener, in the Gateway's order.
    pub listeners: Vec<ListenerResult>,
    /// Distinct Routes accepted on at least one listener.
    pub attached_routes: u32,
}

impl Diagnostics {
    /// True when any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The findings about one object.
    pub fn for_object<'a>(
        &'a self,
        object: &'a ObjectRef,
    ) -> impl Iterator<Item = &'a Diagnostic> + 'a {
        self.items.iter().filter(move |d| &d.object == object)
    }

    /// The parent results of one Route.
    pub fn parents_of<'a>(
        &'a self,
        route: &'a ObjectKey,
    ) -> impl Iterator<Item = &'a RouteParentResult> + 'a {
        self.parents.iter().filter(move |p| &p.route == route)
    }
}

/// Collects findings during compilation.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub(crate) items: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn push(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        severity: Severity,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            object: object.clone(),
            field: field.into(),
            severity,
            reason,
            message: message.into(),
        });
    }

    pub(crate) fn error(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.push(object, field, Severity::Error, reason, message);
    }

    pub(crate) fn warning(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.push(object, field, Severity::Warning, reason, message);
    }
}

pub(crate) fn accepted_ok() -> ConditionResult {
    ConditionResult::ok(reason::ACCEPTED, "Accepted")
}

pub(crate) fn resolved_ok() -> ConditionResult {
    ConditionResult::ok(reason::RESOLVED_REFS, "All references resolved")
}

pub(crate) fn not(reason: &'static str, message: impl Into<String>) -> ConditionResult {
    ConditionResult {
        status: false,
        reason,
        message: message.into(),
    }
}
