//! A small YAML tree that keeps the position of every node, built straight
//! from `yaml-rust2`'s parser events.
//!
//! Lighter than a general-purpose tree (no hashing, one position per node),
//! which matters at 100,000 pins, and strict where a manifest should be:
//! anchors, aliases and tags are refused (no alias bombs), keys must be
//! scalars, and a key may appear once per mapping.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::Position;

/// A scalar, with where it starts and whether it was written plain
/// (unquoted), which is when `null`, `~` and `true` mean what YAML says.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub(crate) text: String,
    pub(crate) at: Position,
    pub(crate) plain: bool,
}

impl Scalar {
    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// A plain `true`/`false` (in YAML 1.2's three spellings).
    pub(super) fn as_bool(&self) -> Option<bool> {
        match (self.plain, self.text.as_str()) {
            (true, "true" | "True" | "TRUE") => Some(true),
            (true, "false" | "False" | "FALSE") => Some(false),
            _ => None,
        }
    }

    /// A plain empty value, `~` or `null`.
    pub(super) fn is_null(&self) -> bool {
        self.plain && matches!(self.text.as_str(), "" | "~" | "null")
    }
}

impl std::ops::Deref for Scalar {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// A list.
#[derive(Debug, Clone)]
pub(crate) struct Sequence {
    pub(crate) at: Position,
    pub(crate) items: Vec<Node>,
}

impl std::ops::Deref for Sequence {
    type Target = [Node];
    fn deref(&self) -> &[Node] {
        &self.items
    }
}

/// A mapping, its entries in file order.
#[derive(Debug, Clone)]
pub(crate) struct Mapping {
    pub(crate) at: Position,
    pub(crate) entries: Vec<(Scalar, Node)>,
}

impl Mapping {
    /// The value of `key`. Mappings in a manifest are small: a scan is
    /// cheaper than a hash.
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| v)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Scalar, &Node)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Scalar> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Where the mapping starts: its first key, or its `{`. (The parser
    /// marks a block mapping at the `:` after the first key.)
    pub(super) fn start(&self) -> Position {
        self.keys().next().map_or(self.at, |k| self.at.min(k.at))
    }
}

/// A node of the tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Scalar(Scalar),
    Sequence(Sequence),
    Mapping(Mapping),
}

impl Node {
    pub(super) fn at(&self) -> Position {
        match self {
            Self::Scalar(s) => s.at,
            Self::Sequence(s) => s.at,
            Self::Mapping(m) => m.start(),
        }
    }

    pub(super) fn as_scalar(&self) -> Option<&Scalar> {
        match self {
            Self::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_sequence(&self) -> Option<&Sequence> {
        match self {
            Self::Sequence(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_mapping(&self) -> Option<&Mapping> {
        match self {
            Self::Mapping(m) => Some(m),
            _ => None,
        }
    }
}

/// Why a document could not be loaded into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoadError {
    /// The scanner or parser refused the text.
    Syntax { at: Position, message: String },
    /// An anchor or alias, at the node it names (`&` may be before it).
    Anchor(Position),
    /// A tag, at the node it names (`!` may be before it).
    Tag(Position),
    /// A mapping key that is a list or mapping.
    KeyNotScalar(Position),
    /// A key written twice in one mapping.
    DuplicateKey {
        key: String,
        at: Position,
        first_line: usize,
    },
    /// The document is a list or a scalar.
    TopLevelNotMapping(Position),
}

/// Loads one document. An empty document is an empty mapping.
pub(crate) fn load(text: &str) -> Result<Node, LoadError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| LoadError::Syntax {
            at: position(*e.marker()),
            message: e.info().to_owned(),
        })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.root.unwrap_or_else(|| {
        Node::Mapping(Mapping {
            at: Position { line: 1, column: 1 },
            entries: Vec::new(),
        })
    }))
}

fn position(m: Marker) -> Position {
    Position {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// Above this many keys a mapping's duplicate check uses an index instead
/// of a scan, so a hostile mapping of 100,000 keys stays linear.
const SCAN_LIMIT: usize = 16;

/// A collection being built.
enum Open {
    Sequence(Sequence),
    Mapping {
        map: Mapping,
        /// The key waiting for its value.
        key: Option<Scalar>,
        /// Key -> line, once the mapping is large.
        index: Option<HashMap<String, usize>>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    error: Option<LoadError>,
}

impl Builder {
    fn fail(&mut self, e: LoadError) {
        self.error.get_or_insert(e);
    }

    /// Attaches a finished node to the collection under construction.
    fn add(&mut self, node: Node) {
        let Some(open) = self.stack.last_mut() else {
            match node {
                Node::Mapping(_) => self.root = Some(node),
                other => self.fail(LoadError::TopLevelNotMapping(other.at())),
            }
            return;
        };
        match open {
            Open::Sequence(seq) => seq.items.push(node),
            Open::Mapping { map, key, index } => match key.take() {
                Some(k) => map.entries.push((k, node)),
                None => {
                    let Node::Scalar(k) = node else {
                        let at = node.at();
                        self.fail(LoadError::KeyNotScalar(at));
                        return;
                    };
                    let first_line = match index {
                        Some(index) => index.get(&k.text).copied(),
                        None => map.keys().find(|e| e.text == k.text).map(|e| e.at.line),
                    };
                    if let Some(first_line) = first_line {
                        let e = LoadError::DuplicateKey {
                            key: k.text.clone(),
                            at: k.at,
                            first_line,
                        };
                        self.fail(e);
                        return;
                    }
                    if let Some(index) = index {
                        index.insert(k.text.clone(), k.at.line);
                    } else if map.entries.len() >= SCAN_LIMIT {
                        let mut built: HashMap<String, usize> =
                            map.keys().map(|e| (e.text.clone(), e.at.line)).collect();
                        built.insert(k.text.clone(), k.at.line);
                        *index = Some(built);
                    }
                    *key = Some(k);
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let at = position(mark);
        match event {
            Event::Alias(_) => self.fail(LoadError::Anchor(at)),
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if anchor != 0 =>
            {
                self.fail(LoadError::Anchor(at));
            }
            Event::Scalar(_, _, _, Some(_))
            | Event::SequenceStart(_, Some(_))
            | Event::MappingStart(_, Some(_)) => {
                self.fail(LoadError::Tag(at));
            }
            Event::Scalar(text, style, _, None) => self.add(Node::Scalar(Scalar {
                text,
                at,
                plain: style == TScalarStyle::Plain,
            })),
            Event::SequenceStart(..) => self.stack.push(Open::Sequence(Sequence {
                at,
                items: Vec::new(),
            })),
            Event::MappingStart(..) => self.stack.push(Open::Mapping {
                map: Mapping {
                    at,
                    entries: Vec::new(),
                },
                key: None,
                index: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Sequence(seq)) => self.add(Node::Sequence(seq)),
                Some(Open::Mapping { map, .. }) => self.add(Node::Mapping(map)),
                None => {}
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}
