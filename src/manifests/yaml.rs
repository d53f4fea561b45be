//! Reading the YAML documents of one manifest file.
//!
//! Users keep whole platforms in one GitOps bundle, so a file may hold any number of documents:
//! the parser's limits that count the whole stream (documents, nodes, events, scalar bytes) grow
//! with the file, which already holds every byte of what they count. The limits that bound how
//! far a small file can expand — anchors, aliases, nesting — stay fixed and are stated in the
//! error and in the `--help` of the commands that read manifests.

use serde_json::Value;
use serde_saphyr::{Error, budget::BudgetBreach};

/// Most anchors (`&name`) in one file.
pub const MAX_ANCHORS: usize = 50_000;
/// Most aliases (`*name`) in one file.
pub const MAX_ALIASES: usize = 50_000;
/// Deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 64;
/// Most aliases per anchor, once a file has 100 aliases: what makes a small file expand.
pub const MAX_ALIASES_PER_ANCHOR: usize = 10;

/// The limits, as `--help` states them (a test checks the numbers against the constants).
pub const LIMITS_HELP: &str = "A file may hold any number of documents. YAML anchors and aliases: at most 50000 of \
     each per file, and 10 aliases per anchor; nesting at most 64 deep.";

/// The non-null documents of `text`, or what is wrong with it as one line.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    match serde_saphyr::from_multiple_with_options::<Value>(text, options(text.len())) {
        Ok(documents) => Ok(documents.into_iter().filter(|d| !d.is_null()).collect()),
        Err(error) => Err(message(&error)),
    }
}

/// How manifests are read: YAML 1.2, whose booleans are `true` and `false` only. (The parser's
/// default also takes YAML 1.1's `yes`, `on`, `y`... in any case, which agrees with neither
/// kubectl nor YAML 1.2.)
fn options(bytes: usize) -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true, budget: Some(budget(bytes)) }
}

/// The parser's limits for a file of `bytes` bytes. A document, a node or an event each take at
/// least one byte of the file outside anchors and aliases (a document its `---`, an event at
/// most two per node), so limits of a few times the file's size never refuse a file for its
/// size; the parser's own defaults stay the floor.
fn budget(bytes: usize) -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    let scaled = |floor: usize, per_byte: usize| floor.max(bytes.saturating_mul(per_byte));
    budget.max_documents = scaled(budget.max_documents, 1);
    budget.max_nodes = scaled(budget.max_nodes, 2);
    budget.max_events = scaled(budget.max_events, 4);
    budget.max_total_scalar_bytes = scaled(budget.max_total_scalar_bytes, 1);
    budget.max_anchors = MAX_ANCHORS;
    budget.max_aliases = MAX_ALIASES;
    budget.max_depth = MAX_DEPTH;
    budget.alias_anchor_ratio_multiplier = MAX_ALIASES_PER_ANCHOR;
    budget
}

/// The parser's first line names the position and the cause; the rest is a source excerpt. A
/// limit says which, and what it is.
fn message(error: &Error) -> String {
    if let Error::Budget { breach, location } = error.without_snippet() {
        let position = format!("line {} column {}", location.line(), location.column());
        return format!("{position}: {}", limit(breach));
    }
    first_line(&error.to_string()).to_owned()
}

fn limit(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Anchors { .. } => {
            format!("more than {MAX_ANCHORS} YAML anchors (&name) in one file: split the file")
        }
        BudgetBreach::Aliases { .. } => {
            format!("more than {MAX_ALIASES} YAML aliases (*name) in one file: split the file")
        }
        BudgetBreach::AliasAnchorRatio { .. } => format!(
            "more than {MAX_ALIASES_PER_ANCHOR} YAML aliases (*name) per anchor (&name) in one file"
        ),
        BudgetBreach::Depth { .. } => format!("nested more than {MAX_DEPTH} levels deep"),
        other => format!("the YAML expands past what its size allows ({other:?})"),
    }
}

fn first_line(text: &str) -> &str {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.strip_prefix("error: ").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(count: usize) -> String {
        (0..count)
            .map(|i| format!("---\nkind: Route\nmetadata:\n  name: r{i}\n"))
            .collect()
    }

    #[test]
    fn a_file_of_thousands_of_documents_is_read_whole() {
        let documents = documents(&routes(20_000)).expect("read");
        assert_eq!(documents.len(), 20_000);
        assert_eq!(documents[19_999]["metadata"]["name"], "r19999");
    }

    #[test]
    fn null_documents_are_left_out() {
        assert_eq!(
            documents("---\n---\na: 1\n...\n---\n").expect("read").len(),
            1
        );
    }

    #[test]
    fn a_syntax_error_is_one_line_with_its_position() {
        assert_eq!(
            documents("a: 1\n---\nb: {x: 1\n").expect_err("refused"),
            "line 3 column 4: unclosed bracket '{'"
        );
    }

    #[test]
    fn too_many_aliases_says_which_limit() {
        let anchors = MAX_ALIASES / MAX_ALIASES_PER_ANCHOR + 1;
        let mut text: String = (0..anchors).map(|i| format!("a{i}: &a{i} 1\n")).collect();
        text.push_str("b: [");
        let aliases: Vec<String> = (0..=MAX_ALIASES)
            .map(|i| format!("*a{}", i % anchors))
            .collect();
        text.push_str(&aliases.join(", "));
        text.push_str("]\n");
        let error = documents(&text).expect_err("refused");
        assert!(error.contains("more than 50000 YAML aliases"), "{error}");
    }

    #[test]
    fn an_alias_bomb_says_which_limit() {
        let aliases = vec!["*a"; 200].join(", ");
        let error = documents(&format!("a: &a [1, 2]\nb: [{aliases}]\n")).expect_err("refused");
        assert!(
            error.contains("more than 10 YAML aliases (*name) per anchor"),
            "{error}"
        );
    }

    #[test]
    fn nesting_past_the_limit_says_which_limit() {
        let text = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let error = documents(&text).expect_err("refused");
        assert!(error.contains("nested more than 64 levels"), "{error}");
    }

    #[test]
    fn the_help_states_the_limits_as_they_are() {
        for limit in [MAX_ANCHORS, MAX_ALIASES, MAX_DEPTH, MAX_ALIASES_PER_ANCHOR] {
            assert!(LIMITS_HELP.contains(&limit.to_string()), "{limit}");
        }
    }
}
