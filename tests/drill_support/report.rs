//! The drills' table: one row per drill, the figures a user asks about after an incident.

use std::{fmt::Write as _, time::Duration};

use super::load::Window;

/// One drill's outcome.
pub struct Row {
    /// The drill, as the table names it.
    pub drill: &'static str,
    /// Requests the clients sent during the event, and how they fared.
    pub window: Window,
    /// POSTs the backend ran twice during the event.
    pub duplicated_posts: u64,
    /// How long until the gateway was whole again, in words with the figure.
    pub recovery: String,
}

/// Milliseconds, for the table.
pub fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// The Markdown table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let mut table = String::from(
        "| drill | sent | failed GET | failed POST | duplicated POST | p99 | recovery |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.drill,
            row.window.sent,
            row.window.failed_gets,
            row.window.failed_posts,
            row.duplicated_posts,
            ms(row.window.p99),
            row.recovery
        );
    }
    table
}
