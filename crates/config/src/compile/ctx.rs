//! The compilation context: the object being compiled, where its findings go, and the helpers
//! every stage uses.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::diagnostics::{ObjectRef, Sink, reason};

/// An object's namespace, `default` when the manifest has none.
pub(crate) fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

/// Marks a part that was written but cannot be compiled; its diagnostics are already reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

/// The object being compiled and where its findings go.
pub(crate) struct Ctx<'a> {
    pub(crate) sink: &'a mut Sink,
    object: &'a ObjectRef,
    /// The first error: why the object is refused.
    pub(crate) rejected: Option<(&'static str, String)>,
    /// The first unresolved reference: why `ResolvedRefs` is false.
    pub(crate) unresolved: Option<(&'static str, String)>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(sink: &'a mut Sink, object: &'a ObjectRef) -> Self {
        Self {
            sink,
            object,
            rejected: None,
            unresolved: None,
        }
    }

    /// Reports an error that makes the object (or its part) unservable as written.
    pub(crate) fn error(
        &mut self,
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        let (field, message) = (field.into(), message.into());
        if self.rejected.is_none() {
            self.rejected = Some((reason, format!("{field}: {message}")));
        }
        self.sink.error(self.object, field, reason, message);
    }

    /// Reports something served, but probably not as meant.
    pub(crate) fn warning(
        &mut self,
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.sink.warning(self.object, field, reason, message);
    }

    /// Reports a reference that did not resolve: the object is still served, the reference's
    /// share answers 500.
    pub(crate) fn unresolved(
        &mut self,
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        let (field, message) = (field.into(), message.into());
        if self.unresolved.is_none() {
            self.unresolved = Some((reason, format!("{field}: {message}")));
        }
        self.sink.error(self.object, field, reason, message);
    }

    /// A manifest duration in milliseconds, or an error at `field`.
    pub(crate) fn millis(&mut self, text: &str, field: &str) -> Result<u64, Invalid> {
        match portcullis_api::duration::parse_duration(text) {
            Some(d) => Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => {
                self.error(
                    field,
                    reason::INVALID,
                    format!(
                        "{text:?} is not a duration; write whole numbers with units h, m, s or ms, \
                         like 500ms or 1m30s"
                    ),
                );
                Err(Invalid)
            }
        }
    }
}
