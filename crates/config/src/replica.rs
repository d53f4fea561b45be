//! What a gateway replica reports about the config it serves, and how the operator reads it.
//!
//! Each replica writes one condition on its own Pod, through the `pods/status` subresource:
//!
//! ```yaml
//! status:
//!   conditions:
//!   - type: portcullis.dev/ConfigServed
//!     status: "True"                 # "False": the newest revision it saw was refused
//!     reason: Served                 # or Refused
//!     message: serving revision 3f2a…; refused revision 9c41…: <why>
//! ```
//!
//! Why a Pod condition, and not an annotation or an object of its own:
//! - The operator already owns the Pods' lifecycle view (ready, terminating) through the same
//!   watch, so "revision R is live on k of n ready replicas" comes from one consistent object,
//!   and a deleted Pod takes its report with it — nothing to garbage-collect.
//! - It is the kind of state Kubernetes meant Pod conditions for (readiness gates are written
//!   the same way): the kubelet keeps conditions it does not own when it updates a Pod's status.
//! - It needs the narrowest grant: `patch` on `pods/status` in the Gateway's namespace. The
//!   status subresource ignores changes to labels, annotations and spec, so a compromised
//!   gateway pod cannot relabel a Pod into another Service (an annotation would need `patch` on
//!   `pods`, which can); a per-replica object would need `create` on its kind, with names the
//!   Role cannot restrict.
//!
//! The message is for people (`kubectl describe pod`) and for the operator: one format, written
//! by [`Report::condition`] and read back by [`Report::parse`], so the two halves never drift.

use std::fmt;

/// The Pod condition type a replica reports its config in.
pub const CONDITION_TYPE: &str = "portcullis.dev/ConfigServed";
/// The condition's reason while the newest revision seen is served.
pub const REASON_SERVED: &str = "Served";
/// The condition's reason while the newest revision seen was refused.
pub const REASON_REFUSED: &str = "Refused";
/// The longest refusal message carried (the condition is part of the Pod object).
const MAX_ERROR_BYTES: usize = 1024;

/// What one replica serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The newest revision the replica has seen is the one it serves.
    Served {
        /// The revision served.
        revision: String,
    },
    /// The newest revision the replica has seen could not be loaded; the previous one (if
    /// any) keeps serving.
    Refused {
        /// The revision still served, if one ever loaded.
        serving: Option<String>,
        /// The revision refused (from the ConfigMap's revision annotation; empty if unknown).
        refused: String,
        /// Why.
        error: String,
    },
}

/// A condition as written to (or read from) the Pod: `(status, reason, message)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionText {
    /// `"True"` or `"False"`.
    pub status: &'static str,
    /// [`REASON_SERVED`] or [`REASON_REFUSED`].
    pub reason: &'static str,
    /// The revisions, and the error when one was refused.
    pub message: String,
}

impl Report {
    /// The revision the replica serves, if any.
    pub fn serving(&self) -> Option<&str> {
        match self {
            Report::Served { revision } => Some(revision),
            Report::Refused { serving, .. } => serving.as_deref(),
        }
    }

    /// The condition that carries this report.
    pub fn condition(&self) -> ConditionText {
        match self {
            Report::Served { revision } => ConditionText {
                status: "True",
                reason: REASON_SERVED,
                message: format!("serving revision {revision}"),
            },
            Report::Refused {
                serving,
                refused,
                error,
            } => {
                let serving = serving.as_deref().map_or_else(
                    || "serving nothing".to_owned(),
                    |r| format!("serving revision {r}"),
                );
                ConditionText {
                    status: "False",
                    reason: REASON_REFUSED,
                    message: format!("{serving}; refused revision {refused}: {}", clip(error)),
                }
            }
        }
    }

    /// Reads a report back from a condition's reason and message; `None` when it is not one.
    pub fn parse(reason: &str, message: &str) -> Option<Report> {
        let (serving, rest) = match message.strip_prefix("serving revision ") {
            Some(rest) => {
                let end = rest.find(';').unwrap_or(rest.len());
                (Some(rest[..end].to_owned()), &rest[end..])
            }
            None => (None, message.strip_prefix("serving nothing")?),
        };
        match reason {
            REASON_SERVED => Some(Report::Served {
                revision: serving.filter(|r| !r.is_empty() && rest.is_empty())?,
            }),
            REASON_REFUSED => {
                let rest = rest.strip_prefix("; refused revision ")?;
                let (refused, error) = rest.split_once(": ").unwrap_or((rest, ""));
                Some(Report::Refused {
                    serving,
                    refused: refused.to_owned(),
                    error: error.to_owned(),
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.condition().message)
    }
}

/// `error` cut to [`MAX_ERROR_BYTES`] on a character boundary.
fn clip(error: &str) -> &str {
    if error.len() <= MAX_ERROR_BYTES {
        return error;
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(report: Report) {
        let text = report.condition();
        assert_eq!(
            Report::parse(text.reason, &text.message),
            Some(report),
            "{}",
            text.message
        );
    }

    #[test]
    fn every_report_reads_back_as_written() {
        round_trip(Report::Served {
            revision: "3f2a9c".to_owned(),
        });
        round_trip(Report::Refused {
            serving: Some("3f2a9c".to_owned()),
            refused: "9c41".to_owned(),
            error: "ConfigMap gw/edge-config: unknown apiVersion: x; y: z".to_owned(),
        });
        round_trip(Report::Refused {
            serving: None,
            refused: "9c41".to_owned(),
            error: String::new(),
        });
    }

    #[test]
    fn the_message_says_what_is_served_and_what_was_refused() {
        let report = Report::Refused {
            serving: Some("aaa".to_owned()),
            refused: "bbb".to_owned(),
            error: "cannot read it".to_owned(),
        };
        let text = report.condition();
        assert_eq!(text.status, "False");
        assert_eq!(
            text.message,
            "serving revision aaa; refused revision bbb: cannot read it"
        );
        assert_eq!(report.serving(), Some("aaa"));
    }

    #[test]
    fn a_long_error_is_cut_on_a_character_boundary() {
        let report = Report::Refused {
            serving: None,
            refused: "r".to_owned(),
            error: "é".repeat(2000),
        };
        let message = report.condition().message;
        assert!(message.len() < 1100);
        assert!(Report::parse(REASON_REFUSED, &message).is_some());
    }

    #[test]
    fn other_conditions_are_not_reports() {
        assert_eq!(Report::parse("Served", "hello"), None);
        assert_eq!(Report::parse("Other", "serving revision a"), None);
        assert_eq!(Report::parse("Served", "serving revision "), None);
    }
}
