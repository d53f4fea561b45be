//! Manifests as the YAML parser sees them before any type is resolved: every scalar keeps its
//! text, whether it was written plain (unquoted and untagged), and where it is. Readers of
//! different YAML versions resolve only plain scalars differently, so this is what
//! [`super::readings`] compares them on.

/// One node of a YAML document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A scalar.
    Scalar(Scalar),
    /// A sequence, in order.
    Sequence(Vec<Node>),
    /// A mapping's entries, in order.
    Mapping(Vec<(Node, Node)>),
    /// An alias (`*name`): its anchor is looked at where it is defined.
    Alias,
}

/// A scalar as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    /// The text, after escapes and line folding.
    pub text: String,
    /// Unquoted, not a block scalar, and without a tag: the reader resolves its type.
    pub plain: bool,
    /// Line in the file, from 1, where the text starts (after a tag, on the line after a
    /// block scalar's `|`): only plain scalars are reported, and theirs is where they are.
    pub line: usize,
    /// Column in the line, from 1.
    pub column: usize,
}

/// The documents of `text`; none when it is not valid YAML (the loader reports that).
pub fn documents(text: &str) -> Vec<Node> {
    use granit_parser::{Event, Parser, ScalarStyle};
    let mut documents = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    for next in Parser::new_from_str(text) {
        let Ok((event, span)) = next else {
            return Vec::new();
        };
        let node = match event {
            Event::Scalar(text, style, _, tag) => Node::Scalar(Scalar {
                text: text.into_owned(),
                plain: style == ScalarStyle::Plain && tag.is_none(),
                line: span.start.line(),
                column: span.start.col() + 1,
            }),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Node::Alias,
            Event::SequenceStart(..) => {
                open.push(Open::Sequence(Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                open.push(Open::Mapping(Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some(Open::Sequence(items)) => Node::Sequence(items),
                Some(Open::Mapping(entries, _)) => Node::Mapping(entries),
                None => continue,
            },
            _ => continue,
        };
        match open.last_mut() {
            None => documents.push(node),
            Some(Open::Sequence(items)) => items.push(node),
            Some(Open::Mapping(entries, key)) => match key.take() {
                None => *key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    documents
}

/// A collection whose end has not been read yet; a mapping holds the key awaiting its value.
enum Open {
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>, Option<Node>),
}

impl Node {
    /// The text of the scalar at `path` (mapping keys), if there is one.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        let Some((first, rest)) = path.split_first() else {
            return match self {
                Node::Scalar(scalar) => Some(&scalar.text),
                _ => None,
            };
        };
        let Node::Mapping(entries) = self else {
            return None;
        };
        entries.iter().find_map(|(key, value)| match key {
            Node::Scalar(key) if key.text == *first => value.text_at(rest),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str, plain: bool, line: usize, column: usize) -> Node {
        Node::Scalar(Scalar {
            text: text.to_owned(),
            plain,
            line,
            column,
        })
    }

    #[test]
    fn scalars_keep_text_quoting_and_position() {
        let documents = documents("a: yes\nb: 'no'\nc: [on, !!str off]\n---\n- |\n  y\n");
        assert_eq!(
            documents,
            [
                Node::Mapping(vec![
                    (scalar("a", true, 1, 1), scalar("yes", true, 1, 4)),
                    (scalar("b", true, 2, 1), scalar("no", false, 2, 4)),
                    (
                        scalar("c", true, 3, 1),
                        Node::Sequence(vec![scalar("on", true, 3, 5), scalar("off", false, 3, 15)])
                    ),
                ]),
                Node::Sequence(vec![scalar("y\n", false, 6, 3)]),
            ]
        );
    }

    #[test]
    fn text_at_follows_mapping_keys() {
        let documents = documents("kind: Route\nmetadata:\n  name: orders\n");
        assert_eq!(documents[0].text_at(&["metadata", "name"]), Some("orders"));
        assert_eq!(documents[0].text_at(&["metadata", "namespace"]), None);
    }

    #[test]
    fn invalid_yaml_has_no_documents() {
        assert!(documents("a: [\n").is_empty());
    }
}
