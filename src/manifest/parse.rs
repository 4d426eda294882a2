//! YAML text -> validated [`Manifest`], collecting every problem on the way.
//!
//! The YAML is loaded into a tree that keeps positions ([`yaml_tree`], which
//! also refuses anchors, aliases and tags, so alias bombs cannot happen), then
//! walked by hand rather than through serde: serde stops at the first error,
//! and `validate` must report all of them, each with its line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::include::{self, IncludeEntry, ReadFailure, Source};
use super::provider_config::check_base_url;
use super::target::is_valid_name;
use super::yaml_tree::{self, LoadError, Mapping, Node, Scalar, Sequence};
use super::{CallKind, MAX_META_CHARS, MAX_NAME_CHARS, RateLimit, UnpinGuard, check_label};

use super::provider_config::{Setting, Settings};
use super::{
    ContentId, DesiredPin, Diagnostic, Diagnostics, Labels, MANIFEST_VERSION, Manifest, PinKey,
    Position, ProviderConfig, ProviderKind, SecretRef, Target,
};
use crate::provider::{FieldValue, TypeField};

/// Manifests larger than this are refused before parsing (room for about
/// 250,000 pins on two targets each).
pub(crate) const MAX_MANIFEST_BYTES: usize = 32 * 1024 * 1024;

// The fields each mapping of the manifest accepts; any other is refused.
// The JSON Schema (`schema.rs`) is checked against these lists.

/// Top-level fields.
pub(super) const MANIFEST_FIELDS: &[&str] = &[
    "version",
    "identity",
    "providers",
    "defaults",
    "prune",
    "state",
    "notify",
    "include",
    "pins",
];
/// Fields of a `notify` entry.
pub(super) const NOTIFY_FIELDS: &[&str] = &["url", "format", "headers", "events"];
/// Fields of an `include` entry written as a mapping.
pub(super) const INCLUDE_FIELDS: &[&str] = &["path", "optional"];
/// Top-level fields of an included file.
pub(super) const INCLUDED_FILE_FIELDS: &[&str] = &["defaults", "pins"];
/// Fields of `state`.
pub(super) const STATE_FIELDS: &[&str] = &["url", "workspace"];
/// Fields every provider type takes.
pub(crate) const COMMON_PROVIDER_FIELDS: &[&str] = &[
    "type",
    "base_url",
    "allow_insecure_http",
    "unpin_guard",
    "rate_limit",
    "rate_limits",
];

/// Every type's own fields, each once.
pub(super) fn own_fields() -> Vec<&'static str> {
    each_once(ProviderKind::all().flat_map(|k| k.provider_type().fields.iter().map(|f| f.name)))
}

/// Gives each pin without a `replication` of its own its provider's, so
/// that a change to either shows as a change (`~`) of the pins it covers.
fn default_replication(
    providers: &BTreeMap<String, ProviderConfig>,
    pins: &mut [(PinKey, DesiredPin)],
) {
    let defaults: BTreeMap<&str, super::Replication> = providers
        .iter()
        .filter_map(|(name, c)| {
            let field = c
                .kind
                .provider_type()
                .fields
                .iter()
                .find(|f| matches!(f.value, FieldValue::Replication))?;
            Some((name.as_str(), c.settings.replication(field.name)?))
        })
        .collect();
    if defaults.is_empty() {
        return;
    }
    for (key, pin) in pins {
        if pin.labels.replication.is_none() {
            pin.labels.replication = defaults.get(key.target.provider.as_str()).copied();
        }
    }
}

/// Whether a type's own field named `name` holds a credential.
fn is_credential(name: &str) -> bool {
    ProviderKind::all()
        .flat_map(|k| k.provider_type().fields)
        .any(|f| f.name == name && matches!(f.value, FieldValue::Secret))
}

/// Whether a type's own field named `name` is a flag.
pub(super) fn is_flag(name: &str) -> bool {
    ProviderKind::all()
        .flat_map(|k| k.provider_type().fields)
        .any(|f| f.name == name && matches!(f.value, FieldValue::Flag))
}

fn each_once(names: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let mut once = Vec::new();
    for name in names {
        if !once.contains(&name) {
            once.push(name);
        }
    }
    once
}

/// Every field a provider may have, whatever its type.
pub(super) fn provider_fields() -> Vec<&'static str> {
    let mut fields = COMMON_PROVIDER_FIELDS.to_vec();
    fields.extend(own_fields());
    fields
}
/// Fields of a `rate_limit` written as a mapping.
pub(super) const RATE_LIMIT_FIELDS: &[&str] = &["rate", "burst"];
/// Fields of a provider's `unpin_guard`.
pub(super) const UNPIN_GUARD_FIELDS: &[&str] = &["count", "percent"];
/// Fields of a `replication` mapping.
pub(super) const REPLICATION_FIELDS: &[&str] = &["min", "max"];
/// Longest time a field may hold: 30 days.
pub(crate) const MAX_SECONDS: u64 = 30 * 24 * 3600;
/// Most peers a replication may name.
const MAX_REPLICATION: u32 = 10_000;
/// Fields of `defaults`.
pub(super) const DEFAULTS_FIELDS: &[&str] = &["to"];
/// Fields of one entry of `pins`.
pub(super) const PIN_FIELDS: &[&str] = &["cid", "name", "to", "meta", "origins", "replication"];

/// Longest `identity` accepted.
pub(super) const MAX_IDENTITY_CHARS: usize = 64;

/// Parses and validates manifest bytes read from `path`; the files it
/// includes are read from disk, relative to `path`.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest, Diagnostics> {
    let mut source = include::Disk { observer: &mut () };
    walk(path, tree(path, bytes, Kind::Main)?, &mut source)
}

/// Which file of a manifest is read: the main one, or one it includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Main,
    Included,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Self::Main => "the manifest",
            Self::Included => "an included file",
        }
    }
}

/// The message for a file over [`MAX_MANIFEST_BYTES`] (`size` bytes or more).
pub(super) fn too_large(kind: Kind, size: u64, or_more: bool) -> String {
    format!(
        "{} is {size} bytes{}; the limit is {} MiB",
        match kind {
            Kind::Main => "manifest",
            Kind::Included => "included file",
        },
        if or_more { " or more" } else { "" },
        MAX_MANIFEST_BYTES / (1024 * 1024)
    )
}

/// Reads manifest bytes into a positioned tree, refusing what the tree
/// cannot hold (size, encoding, depth, syntax).
pub(super) fn tree(path: &Path, bytes: &[u8], kind: Kind) -> Result<Node, Diagnostics> {
    let at_start = Position { line: 1, column: 1 };
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(Diagnostics::single(
            path,
            at_start,
            too_large(kind, bytes.len() as u64, false),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        Diagnostics::single(path, Position { line, column }, "not valid UTF-8")
    })?;
    // Editors on Windows may start the file with a byte order mark; it is not a key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw = raw_problems(text);
    if !raw.is_empty() {
        let problems = raw.into_iter().map(|(position, message)| Diagnostic {
            file: path.to_path_buf(),
            position,
            message,
        });
        return Err(Diagnostics(problems.collect()));
    }
    yaml_tree::load(text).map_err(|e| load_error(path, text, e, kind))
}

/// Validates a tree into a manifest, reading the files it includes from
/// `source`, and reporting every problem: the main manifest's first, then
/// each included file's, each file's in file order.
pub(super) fn walk(
    path: &Path,
    root: Node,
    source: &mut dyn Source,
) -> Result<Manifest, Diagnostics> {
    walk_keeping(path, root, source, false).map(|(manifest, _)| manifest)
}

/// What a load keeps to read an included file again alone (see
/// [`included_pins`]): what the main manifest declares, and which file
/// wrote each pin.
pub(super) struct Kept {
    pub(super) context: Context,
    /// For each pin of the manifest, in order, the index of its file: 0
    /// the main manifest, then its included files in order.
    pub(super) owners: Vec<u32>,
    /// The main manifest's include entries.
    pub(super) entries: Vec<IncludeEntry>,
}

/// [`walk`], keeping what [`Kept`] holds when `keep` is set.
pub(super) fn walk_keeping(
    path: &Path,
    root: Node,
    source: &mut dyn Source,
    keep: bool,
) -> Result<(Manifest, Option<Kept>), Diagnostics> {
    let mut walker = Walker {
        files: vec![path.to_path_buf()],
        current: 0,
        problems: Vec::new(),
    };
    let (manifest, kept) = walker.manifest(root, source, keep);
    walker.result().map(|()| (manifest, kept))
}

/// The pins of one included file, `bytes` read from `path`, against what
/// the main manifest declares (`kept` of its load): sorted by key, each
/// key once, as a whole load would give them.
pub(super) fn included_pins(
    path: &Path,
    bytes: &[u8],
    context: &Context,
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<Vec<(PinKey, DesiredPin)>, Diagnostics> {
    let mut walker = Walker {
        files: vec![path.to_path_buf()],
        current: 0,
        problems: Vec::new(),
    };
    let mut found = Found::new();
    walker.included_file(0, bytes, context, &mut found);
    let (mut pins, _) = walker.finish_pins(found, false);
    default_replication(providers, &mut pins);
    walker.result().map(|()| pins)
}

fn load_error(path: &Path, text: &str, e: LoadError, kind: Kind) -> Diagnostics {
    // The parser marks the node after an anchor or tag, which for a block
    // mapping is the first `:` below it; point at the `&`/`!` itself.
    let last_before = |at: Position, c: char| {
        let mut found = at;
        for (l, line) in text.lines().enumerate().take(at.line) {
            let mut prev = ' ';
            for (col, x) in line.chars().enumerate() {
                // `!!str` starts at its first `!`.
                if x == c && prev != c && (l + 1 < at.line || col + 1 < at.column) {
                    found = Position {
                        line: l + 1,
                        column: col + 1,
                    };
                }
                prev = x;
            }
        }
        found
    };
    const NO_ANCHORS: &str = "YAML anchors and aliases are not supported; write the value out";
    let (position, message) = match e {
        LoadError::Syntax { at, message } if message.contains("unknown anchor") => {
            (at, NO_ANCHORS.into())
        }
        // The scanner marks the character after the tab.
        LoadError::Syntax { at, message } if message.contains("tabs disallowed") => {
            let line = text.lines().nth(at.line.saturating_sub(1)).unwrap_or("");
            let tab = line.chars().take(at.column).position(|c| c == '\t');
            let column = tab.map_or(at.column, |i| i + 1);
            (
                Position {
                    line: at.line,
                    column,
                },
                format!("YAML syntax error: {message}"),
            )
        }
        LoadError::Syntax { at, message } => (at, format!("YAML syntax error: {message}")),
        LoadError::TopLevelNotMapping(at) => (at, format!("{} must be a mapping", kind.what())),
        LoadError::Anchor(at) => (last_before(at, '&'), NO_ANCHORS.into()),
        LoadError::Tag(at) => (last_before(at, '!'), "YAML tags are not supported".into()),
        LoadError::KeyNotScalar(at) => (at, "mapping keys must be plain strings".into()),
        LoadError::DuplicateKey {
            key,
            at,
            first_line,
        } => (
            at,
            format!("duplicate key {key:?} (first at line {first_line})"),
        ),
    };
    Diagnostics::single(path, position, message)
}

/// Deepest nesting accepted; a manifest needs 4 levels.
const MAX_DEPTH: usize = 64;

/// Checks the raw text for what the YAML loader would get wrong:
///
/// - it stops reading at a NUL, so what follows would go unchecked: control
///   characters (other than tab and line breaks) are refused anywhere;
/// - it reads only the first document: text after a `---` or `...` that ends
///   it is refused rather than ignored;
/// - it recurses once per nested block collection and overflows the stack
///   at a few thousand levels, so nesting beyond [`MAX_DEPTH`] is refused.
///   The depth is estimated cheaply per line: open indentation levels, plus
///   compact entries (`- - x`), plus open `[`/`{` outside quotes and
///   comments. It can miss at most half the levels (`- key:` opens two but
///   counts one), and the loader caps flow nesting at 255 on its own, so what
///   passes stays far from the stack limit; manifests never come close.
fn raw_problems(text: &str) -> Vec<(Position, String)> {
    let mut problems = Vec::new();
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0_usize;
    let mut quote: Option<char> = None;
    let mut content = false;
    let mut ended: Option<usize> = None;
    for (l, line) in text.lines().enumerate() {
        let at = |column: usize| Position {
            line: l + 1,
            column: column + 1,
        };
        for (col, c) in line.chars().enumerate() {
            if c.is_control() && c != '\t' && c != '\r' {
                problems.push((at(col), format!("control character {c:?} in the file")));
            }
        }
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let is_marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
        };
        if is_marker("...") || (is_marker("---") && content) {
            ended = ended.or(Some(l + 1));
            continue;
        }
        if body.is_empty() || body.starts_with(['#', '\r']) || is_marker("---") {
            continue;
        }
        if body.starts_with('%') && !content {
            continue; // a directive, like %YAML 1.2
        }
        if let Some(end) = ended {
            problems.push((
                at(indent),
                format!("only one YAML document is read, and this follows its end at line {end}"),
            ));
            break;
        }
        content = true;
        while indents.last().is_some_and(|&i| i >= indent) {
            indents.pop();
        }
        indents.push(indent);
        // Where on this line the nesting first goes too deep.
        let mut over = (indents.len() > MAX_DEPTH).then_some(indent);
        // Compact nested entries on one line: `- - x`, `? x`, `: x`.
        let mut col = indent;
        let mut rest = body;
        while let Some(after) = rest.strip_prefix(['-', '?', ':'])
            && (after.is_empty() || after.starts_with([' ', '\t']))
        {
            let next = after.trim_start_matches([' ', '\t']);
            col += rest.len() - next.len();
            rest = next;
            indents.push(col);
            if over.is_none() && indents.len() + flow > MAX_DEPTH {
                over = Some(col);
            }
        }
        // Flow collections and quoted scalars; in block context they start
        // only where a node does: at the start or after `: `.
        let mut node_start = true;
        let mut prev = ' ';
        let mut chars = rest.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some('\'') if c == '\'' && chars.peek().is_some_and(|&(_, n)| n == '\'') => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev == ' ' || prev == '\t' => break,
                    '"' | '\''
                        if node_start
                            || (flow > 0 && matches!(prev, ' ' | '\t' | '[' | '{' | ',' | ':')) =>
                    {
                        quote = Some(c);
                    }
                    '[' | '{' if node_start || flow > 0 => {
                        flow += 1;
                        if over.is_none() && indents.len() + flow > MAX_DEPTH {
                            over = Some(col + i);
                        }
                    }
                    ']' | '}' if flow > 0 => flow -= 1,
                    _ => {}
                },
            }
            node_start = flow == 0
                && quote.is_none()
                && (c == ' ' || c == '\t')
                && (node_start || prev == ':');
            prev = c;
        }
        if let Some(col) = over {
            problems.push((
                at(col),
                format!("nested more than {MAX_DEPTH} levels deep; a manifest needs 4"),
            ));
            break;
        }
    }
    problems
}

/// Walks the YAML trees of the manifest and the files it includes,
/// building the model and recording problems.
struct Walker {
    /// The files read: the manifest, then each included file.
    files: Vec<PathBuf>,
    /// Index into `files` of the file being walked.
    current: u32,
    /// Each problem with the index of its file.
    problems: Vec<(u32, Diagnostic)>,
}

/// A target named in the manifest, with where it was written.
#[derive(Clone)]
struct TargetAt {
    target: Target,
    position: Position,
}

/// `defaults:` of the manifest or of an included file.
#[derive(Clone, Default)]
struct Defaults {
    to: Option<Vec<TargetAt>>,
}

impl Defaults {
    /// An included file's defaults for its pins: its own fields, and the
    /// main manifest's for the fields it does not set.
    fn over(self, main: &Self) -> Self {
        Self {
            to: self.to.or_else(|| main.to.clone()),
        }
    }
}

/// Where a pin's CID is written: the file (an index into
/// [`Walker::files`]) and the place in it. Orders by file, then place, as
/// the pins are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    file: u32,
    at: Position,
}

/// Every (target, CID) of the manifest and its included files, with where
/// its CID was written.
type Found = Vec<(PinKey, DesiredPin, Place)>;

/// What the main manifest declares that its included files' pins use.
pub(super) struct Context {
    /// Every declared provider, with its type when that is readable.
    declared: BTreeMap<String, Option<ProviderKind>>,
    defaults: Defaults,
}

impl Walker {
    fn problem(&mut self, position: Position, message: impl Into<String>) {
        self.problem_in(self.current, position, message);
    }

    fn problem_in(&mut self, file: u32, position: Position, message: impl Into<String>) {
        self.problems.push((
            file,
            Diagnostic {
                file: self.files[file as usize].clone(),
                position,
                message: message.into(),
            },
        ));
    }

    /// Its problems, each file's in file order, if there are any.
    fn result(mut self) -> Result<(), Diagnostics> {
        if self.problems.is_empty() {
            return Ok(());
        }
        self.problems.sort_by_key(|(file, d)| (*file, d.position));
        Err(Diagnostics(
            self.problems.into_iter().map(|(_, d)| d).collect(),
        ))
    }

    /// `file:line:col` of a place, as diagnostics print it.
    fn describe(&self, place: Place) -> String {
        format!(
            "{}:{}:{}",
            self.files[place.file as usize].display(),
            place.at.line,
            place.at.column
        )
    }

    /// Takes the tree by value so each pin's nodes are freed as soon as the
    /// pin is read: at 100,000 pins the tree and the model need not both
    /// be whole in memory at once. Included files are read after the
    /// manifest's own pins, one at a time, each tree freed before the next.
    fn manifest(
        &mut self,
        root: Node,
        source: &mut dyn Source,
        keep: bool,
    ) -> (Manifest, Option<Kept>) {
        let mut manifest = Manifest {
            path: self.files[0].clone(),
            providers: BTreeMap::new(),
            prune: false,
            state: None,
            notify: Vec::new(),
            included: Vec::new(),
            pins: Vec::new(),
        };
        let Node::Mapping(mut top) = root else {
            self.mapping(&root, "the manifest");
            return (manifest, None);
        };
        let top = &mut top;
        if top.is_empty() {
            self.problem(
                Position { line: 1, column: 1 },
                "the manifest is empty; it needs `version`, `providers` and `pins`",
            );
            source.included(&[], &[]);
            return (manifest, None);
        }
        self.known_keys(top, MANIFEST_FIELDS, "the manifest");
        // What marks this manifest's requests on a Pinning Service.
        let mut identity = super::DEFAULT_IDENTITY.to_owned();
        if let Some(node) = top.get("identity")
            && let Some(s) = self.scalar(node, "`identity`")
        {
            if is_valid_name(s.as_str()) && s.chars().count() <= MAX_IDENTITY_CHARS {
                identity = s.as_str().to_owned();
            } else {
                self.problem(
                    s.at,
                    format!(
                        "`identity` may hold only letters, digits, '-' and '_' ({MAX_IDENTITY_CHARS} at most)"
                    ),
                );
            }
        }
        if let Some(node) = top.get("prune")
            && let Some(s) = self.scalar(node, "`prune`")
        {
            match s.as_bool() {
                Some(prune) => manifest.prune = prune,
                None => self.problem(s.at, "`prune` must be true or false"),
            }
        }
        if let Some(node) = top.get("state") {
            manifest.state = self.state(node);
        }
        if let Some(node) = top.get("notify") {
            manifest.notify = self.notify(node);
        }

        if let Some(v) = self.required(top, "version", "the manifest")
            && let Some(s) = self.scalar(v, "`version`")
            && s.as_str().parse::<u64>() != Ok(MANIFEST_VERSION)
        {
            self.problem(
                s.at,
                format!(
                    "unsupported manifest version {:?}; this pinsync reads version {MANIFEST_VERSION}",
                    s.as_str()
                ),
            );
        }

        // Every declared provider, with its type when that is readable: a
        // provider with a problem of its own is still declared for targets.
        let mut declared: BTreeMap<String, Option<ProviderKind>> = BTreeMap::new();
        if let Some(providers) = self.required(top, "providers", "the manifest")
            && let Some(map) = self.mapping(providers, "`providers`")
        {
            for (name, node) in map.iter() {
                let kind = node
                    .as_mapping()
                    .and_then(|m| m.get("type").and_then(Node::as_scalar))
                    .and_then(|t| ProviderKind::from_name(t.as_str()));
                declared.insert(name.as_str().to_owned(), kind);
                if let Some(config) = self.provider(name, node, &identity) {
                    manifest.providers.insert(name.as_str().to_owned(), config);
                }
            }
        }

        let defaults = top
            .get("defaults")
            .map(|d| self.defaults(d, &declared))
            .unwrap_or_default();
        let includes = top.get("include").map(|node| self.include(node));

        let mut found: Found = Vec::new();
        // With `include`, the manifest may leave every pin to its files.
        let pins = if includes.is_some() {
            top.get("pins").is_some()
        } else {
            self.required(top, "pins", "the manifest").is_some()
        };
        if pins {
            let at = top.entries.iter().position(|(k, _)| k.text == "pins");
            let (_, pins) = top.entries.swap_remove(at.expect("just found"));
            match pins {
                Node::Sequence(seq) => {
                    self.pins(seq, defaults.to.as_deref(), &declared, &mut found);
                }
                other => {
                    self.sequence(&other, "`pins`");
                }
            }
        }
        let entries = includes.unwrap_or_default();
        let context = Context { declared, defaults };
        if source.follows_includes() {
            let resolved = include::resolve(&self.files[0], &entries);
            for (at, message) in resolved.problems {
                self.problem_in(0, at, message);
            }
            let paths: Vec<PathBuf> = resolved.files.iter().map(|f| f.path.clone()).collect();
            source.included(&entries, &paths);
            let files = resolved
                .files
                .into_iter()
                .map(|file| (file.path, entries[file.entry].at));
            self.included_files(files, source, &context, &mut found);
            manifest.included = paths;
        }
        let (pins, owners) = self.finish_pins(found, keep);
        manifest.pins = pins;
        default_replication(&manifest.providers, &mut manifest.pins);
        let kept = keep.then_some(Kept {
            context,
            owners,
            entries,
        });
        (manifest, kept)
    }

    /// `include: [PATH_OR_GLOB, {path: PATH_OR_GLOB, optional: true}, ...]`.
    fn include(&mut self, node: &Node) -> Vec<IncludeEntry> {
        let Some(seq) = self.sequence(node, "`include`") else {
            return Vec::new();
        };
        let mut entries = Vec::new();
        for item in seq.iter() {
            let (path, optional) = if let Some(map) = item.as_mapping() {
                self.known_keys(map, INCLUDE_FIELDS, "an `include` entry");
                let optional = self.flag(map, "optional");
                let Some(path) = self.required(map, "path", "an `include` entry") else {
                    continue;
                };
                (path, optional)
            } else {
                (item, false)
            };
            let Some(s) = self.scalar(path, "an `include` path") else {
                continue;
            };
            if s.as_str().is_empty() {
                self.problem(s.at, "an `include` path is empty");
                continue;
            }
            entries.push(IncludeEntry {
                written: s.as_str().to_owned(),
                optional,
                at: s.at,
            });
        }
        entries
    }

    /// Reads the included files in order (so `source` sees them in order)
    /// and walks them on every core: at a million pins the files take
    /// seconds to parse one after another. Each file's problems and pins
    /// carry its index, and both are sorted by it later, so the order in
    /// which the files finish does not matter.
    fn included_files(
        &mut self,
        files: impl Iterator<Item = (PathBuf, Position)>,
        source: &mut dyn Source,
        context: &Context,
        found: &mut Found,
    ) {
        let first = self.files.len();
        let entries: Vec<Position> = files
            .map(|(path, entry_at)| {
                self.files.push(path);
                entry_at
            })
            .collect();
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(entries.len());
        // Read on this thread; at most `workers` files wait to be parsed.
        let (to_parse, parse_next) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>)>(workers);
        // Held by the workers alone: once every one has stopped (a panic
        // included), it is dropped, and sending fails instead of waiting.
        let parse_next = std::sync::Arc::new(std::sync::Mutex::new(parse_next));
        let (parsed, results) = std::sync::mpsc::channel();
        // One walker a worker, not a file: each holds every path.
        let walkers: Vec<Walker> = (0..workers)
            .map(|_| Walker {
                files: self.files.clone(),
                current: 0,
                problems: Vec::new(),
            })
            .collect();
        std::thread::scope(|scope| {
            for mut walker in walkers {
                let (parse_next, parsed) = (std::sync::Arc::clone(&parse_next), parsed.clone());
                scope.spawn(move || {
                    loop {
                        let next = parse_next
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok((index, bytes)) = next else {
                            break;
                        };
                        let mut pins = Found::new();
                        walker.included_file(index, &bytes, context, &mut pins);
                        drop(bytes);
                        let problems = std::mem::take(&mut walker.problems);
                        if parsed.send((problems, pins)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop((parse_next, parsed));
            let files = entries.len();
            for (offset, entry_at) in entries.into_iter().enumerate() {
                let index = u32::try_from(first + offset).expect("far fewer files");
                // A file that cannot be read is reported here, in file order:
                // its problem is placed at its `include` entry, which files
                // matched by one glob share.
                match source.read(&self.files[index as usize]) {
                    Ok(bytes) => {
                        if to_parse.send((index, bytes)).is_err() {
                            break; // every worker stopped: the scope says why
                        }
                    }
                    Err(failure) => self.unreadable_include(index, entry_at, failure),
                }
                for part in results.try_iter() {
                    self.take_part(part, files, found);
                }
            }
            drop(to_parse);
            for part in results {
                self.take_part(part, files, found);
            }
        });
    }

    /// Moves one included file's problems and pins in as soon as it is
    /// walked, so that its list is freed while the others are parsed.
    fn take_part(
        &mut self,
        (problems, mut pins): (Vec<(u32, Diagnostic)>, Found),
        files: usize,
        found: &mut Found,
    ) {
        self.problems.extend(problems);
        // Files of a collection are alike: room for as many pins in each as
        // in the first one walked spares copying the list as it doubles (at
        // a million pins, 350 MB moved more than once). Room not used is
        // never touched, so it costs no memory.
        if found.capacity() == found.len() {
            found.reserve_exact(pins.len().saturating_mul(files));
        }
        found.append(&mut pins);
    }

    /// An included file that could not be read.
    fn unreadable_include(&mut self, index: u32, entry_at: Position, failure: ReadFailure) {
        match failure {
            ReadFailure::TooLarge(size) => {
                let at_start = Position { line: 1, column: 1 };
                self.problem_in(index, at_start, too_large(Kind::Included, size, true));
            }
            ReadFailure::Io(e) => {
                let path = self.files[index as usize].display();
                let message = format!("cannot read included file {path}: {e}");
                self.problem_in(0, entry_at, message);
            }
        }
    }

    /// One included file, `self.files[index]`, read as `bytes`: its `pins`,
    /// and `defaults` for them.
    fn included_file(&mut self, index: u32, bytes: &[u8], context: &Context, found: &mut Found) {
        let path = &self.files[index as usize];
        let top = match tree(path, bytes, Kind::Included) {
            Ok(Node::Mapping(top)) => top,
            Ok(other) => {
                // The loader refuses any other top level; kept total.
                self.current = index;
                self.mapping(&other, "an included file");
                self.current = 0;
                return;
            }
            Err(diagnostics) => {
                self.problems
                    .extend(diagnostics.0.into_iter().map(|d| (index, d)));
                return;
            }
        };
        self.current = index;
        self.included_top(top, context, found);
        self.current = 0;
    }

    fn included_top(&mut self, mut top: Mapping, context: &Context, found: &mut Found) {
        for key in top.keys() {
            let name = key.as_str();
            if INCLUDED_FILE_FIELDS.contains(&name) {
                continue;
            }
            let message = if name == "include" {
                "an included file cannot include other files; list every file in the main \
                 manifest's `include`"
                    .to_owned()
            } else if MANIFEST_FIELDS.contains(&name) {
                format!(
                    "`{name}` belongs in the main manifest; an included file holds only: {}",
                    INCLUDED_FILE_FIELDS.join(", ")
                )
            } else {
                format!(
                    "unknown field `{name}` in an included file; expected one of: {}",
                    INCLUDED_FILE_FIELDS.join(", ")
                )
            };
            let at = key.at;
            self.problem(at, message);
        }
        let defaults = top
            .get("defaults")
            .map(|d| self.defaults(d, &context.declared))
            .unwrap_or_default()
            .over(&context.defaults);
        if self.required(&top, "pins", "an included file").is_none() {
            return;
        }
        let at = top.entries.iter().position(|(k, _)| k.text == "pins");
        let (_, pins) = top.entries.swap_remove(at.expect("just found"));
        match pins {
            Node::Sequence(seq) => {
                self.pins(seq, defaults.to.as_deref(), &context.declared, found);
            }
            other => {
                self.sequence(&other, "`pins`");
            }
        }
    }

    fn provider(&mut self, name: &Scalar, node: &Node, identity: &str) -> Option<ProviderConfig> {
        let at_name = name.at;
        if !is_valid_name(name.as_str()) {
            self.problem(
                at_name,
                format!(
                    "provider name {:?} may hold only letters, digits, '-' and '_'",
                    name.as_str()
                ),
            );
        }
        let context = format!("provider `{}`", name.as_str());
        let map = self.mapping(node, &context)?;
        self.known_keys(map, &provider_fields(), &context);

        let kind = self.required(map, "type", &context).and_then(|t| {
            let s = self.scalar(t, "`type`")?;
            let kind = ProviderKind::from_name(s.as_str());
            if kind.is_none() {
                self.problem(
                    s.at,
                    format!(
                        "unknown provider type {:?}; expected one of: {}",
                        s.as_str(),
                        ProviderKind::names().join(", ")
                    ),
                );
            }
            kind
        });
        // A bad field must not end the walk of this provider: later fields may
        // hold problems too.
        let mut settings = Settings::default();
        if let Some(k) = kind {
            let t = k.provider_type();
            for field in own_fields().into_iter().filter(|f| !t.takes(f)) {
                // A flag another type takes, set `false`, asks for nothing:
                // manifests have always been allowed to say so.
                let unset_flag = |n: &Node| {
                    is_flag(field) && n.as_scalar().and_then(Scalar::as_bool) == Some(false)
                };
                if let Some(n) = map.get(field).filter(|n| !unset_flag(n)) {
                    // Another type's key (`api_key` for `token`) is a slip.
                    let hint = t
                        .key_field()
                        .filter(|_| is_credential(field))
                        .map(|key| format!(" (its key goes in `{key}`)"))
                        .unwrap_or_default();
                    self.problem(
                        n.at(),
                        format!("{context}: `{field}` is not used by provider type {k}{hint}"),
                    );
                }
            }
            for field in t.fields {
                self.own_field(map, field, &mut settings);
            }
            for (field, message) in t.relation_problems(|f| map.get(f).is_some()) {
                let at = field.and_then(|f| map.get(f)).map_or(node.at(), Node::at);
                self.problem(at, format!("{context}: {message}"));
            }
        }
        let allow_insecure = self.flag(map, "allow_insecure_http");
        let base_url = match map.get("base_url").map(|n| self.scalar(n, "`base_url`")) {
            None => match kind.map(|k| (k, k.default_base_url())) {
                Some((_, Some(url))) => Some(url.to_owned()),
                Some((k, None)) => {
                    self.problem(
                        node.at(),
                        format!("{context}: missing field `base_url` (a {k} provider has no default endpoint)"),
                    );
                    None
                }
                None => None,
            },
            Some(None) => None,
            Some(Some(s)) => match check_base_url(s.as_str(), allow_insecure) {
                Ok(url) => Some(url),
                Err(message) => {
                    self.problem(s.at, message);
                    None
                }
            },
        };
        let unpin_guard = map
            .get("unpin_guard")
            .map(|n| self.unpin_guard(n, &context))
            .unwrap_or_default();
        let rate_limit = match map.get("rate_limit") {
            None => kind.and_then(ProviderKind::default_rate_limit),
            Some(n) => self.rate_limit(n, "`rate_limit`"),
        };
        let mut rate_limits = BTreeMap::new();
        if let Some(n) = map.get("rate_limits") {
            let what = format!("`rate_limits` of {context}");
            if let Some(limits) = self.mapping(n, &what) {
                for (key, value) in limits.iter() {
                    let Some(call) = CallKind::from_name(key.as_str()) else {
                        self.problem(
                            key.at,
                            format!(
                                "unknown kind of call {:?} in {what}; expected one of: {}",
                                key.as_str(),
                                CallKind::NAMES.join(", ")
                            ),
                        );
                        continue;
                    };
                    if let Some(limit) =
                        self.rate_limit(value, &format!("`rate_limits.{}`", call.as_str()))
                    {
                        rate_limits.insert(call, limit);
                    }
                }
            }
        }
        Some(ProviderConfig {
            kind: kind?,
            base_url: base_url?,
            settings,
            allow_insecure_http: allow_insecure,
            unpin_guard,
            identity: kind
                .filter(|k| k.capabilities().ownership_marks)
                .map(|_| identity.to_owned()),
            rate_limit,
            rate_limits,
        })
    }

    /// `state: {url: ${VAR}, workspace: NAME}`: the state on PostgreSQL,
    /// its URL from the environment (it may hold a password).
    fn state(&mut self, node: &Node) -> Option<super::StateConfig> {
        let map = self.mapping(node, "`state`")?;
        self.known_keys(map, STATE_FIELDS, "`state`");
        let url = self
            .required(map, "url", "`state`")
            .and_then(|n| self.secret(n));
        let workspace = map.get("workspace").and_then(|n| {
            let s = self.scalar(n, "`workspace`")?;
            if is_valid_name(s.as_str()) && s.chars().count() <= 63 {
                Some(s.as_str().to_owned())
            } else {
                self.problem(
                    s.at,
                    "`workspace` may hold only letters, digits, '-' and '_' (63 at most)",
                );
                None
            }
        });
        Some(super::StateConfig {
            url: url?,
            workspace,
        })
    }

    /// `notify: [{url, format, headers, events}]`.
    fn notify(&mut self, node: &Node) -> Vec<super::NotifyHook> {
        let Some(seq) = self.sequence(node, "`notify`") else {
            return Vec::new();
        };
        let mut hooks = Vec::new();
        for item in seq.iter() {
            let Some(map) = self.mapping(item, "a `notify` entry") else {
                continue;
            };
            self.known_keys(map, NOTIFY_FIELDS, "a `notify` entry");
            let url = self
                .required(map, "url", "a `notify` entry")
                .and_then(|n| self.scalar(n, "a webhook's `url`"))
                .and_then(|s| {
                    let template = super::Template::parse(s.as_str())
                        .map_err(|message| self.problem(s.at, message))
                        .ok()?;
                    // The URL as it will be, with made-up values: its
                    // scheme and host are checked as a provider's are (a
                    // query may hold the token).
                    let sample = template.fill(|_| Some("x".into())).ok()?;
                    let checked = reqwest::Url::parse(&sample)
                        .map_err(|e| format!("invalid url {:?}: {e}", s.as_str()))
                        .and_then(|mut url| {
                            url.set_query(None);
                            url.set_fragment(None);
                            check_base_url(url.as_str(), false).map_err(|m| {
                                if m.contains("plain http") {
                                    format!(
                                        "url {:?} uses plain http to a host that is not loopback; a webhook takes https (its URL and headers may hold a token)",
                                        s.as_str()
                                    )
                                } else {
                                    m.replace("base_url", "url")
                                }
                            })
                        });
                    match checked {
                        Ok(_) => Some(template),
                        Err(message) => {
                            self.problem(s.at, format!("webhook {message}"));
                            None
                        }
                    }
                });
            let format = match map.get("format").and_then(|n| self.scalar(n, "`format`")) {
                None => Some(super::NotifyFormat::Json),
                Some(s) => match s.as_str() {
                    "json" => Some(super::NotifyFormat::Json),
                    "slack" => Some(super::NotifyFormat::Slack),
                    other => {
                        self.problem(
                            s.at,
                            format!("unknown `format` {other:?}; expected json or slack"),
                        );
                        None
                    }
                },
            };
            let mut headers = Vec::new();
            if let Some(map) = map
                .get("headers")
                .and_then(|n| self.mapping(n, "a webhook's `headers`"))
            {
                for (name, value) in map.iter() {
                    if reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()).is_err() {
                        self.problem(name.at, format!("{:?} is not a header name", name.as_str()));
                        continue;
                    }
                    let Some(s) = self.scalar(value, "a header's value") else {
                        continue;
                    };
                    match super::Template::parse(s.as_str()) {
                        Ok(t) => headers.push((name.as_str().to_owned(), t)),
                        Err(message) => self.problem(s.at, message),
                    }
                }
            }
            let events = match map.get("events") {
                None => super::NotifyEvent::ALL.to_vec(),
                Some(n) => {
                    let mut events = Vec::new();
                    for e in self
                        .sequence(n, "`events`")
                        .map(|s| s.iter())
                        .into_iter()
                        .flatten()
                    {
                        let Some(s) = self.scalar(e, "an event") else {
                            continue;
                        };
                        match super::NotifyEvent::from_name(s.as_str()) {
                            Some(e) => events.push(e),
                            None => self.problem(
                                s.at,
                                format!(
                                    "unknown event {:?}; expected one of: {}",
                                    s.as_str(),
                                    super::NotifyEvent::ALL
                                        .map(super::NotifyEvent::as_str)
                                        .join(", ")
                                ),
                            ),
                        }
                    }
                    events
                }
            };
            if let (Some(url), Some(format)) = (url, format) {
                hooks.push(super::NotifyHook {
                    url,
                    format,
                    headers,
                    events,
                });
            }
        }
        hooks
    }

    /// `180/min`, `10/s`, `{rate: 100/min, burst: 10}`, or `none` (no
    /// pacing, `None`).
    fn rate_limit(&mut self, node: &Node, what: &str) -> Option<RateLimit> {
        if let Some(s) = node.as_scalar() {
            if s.as_str() == "none" {
                return None;
            }
            return RateLimit::parse(s.as_str())
                .map_err(|message| self.problem(s.at, message))
                .ok();
        }
        let map = self.mapping(node, what)?;
        self.known_keys(map, RATE_LIMIT_FIELDS, what);
        let rate = self.required(map, "rate", what)?;
        let rate = self.scalar(rate, "`rate`")?;
        let mut limit = RateLimit::parse(rate.as_str())
            .map_err(|message| self.problem(rate.at, message))
            .ok()?;
        if let Some(burst) = map.get("burst") {
            let burst = self.scalar(burst, "`burst`")?;
            limit.burst = match burst.as_str().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    self.problem(
                        burst.at,
                        "`burst` must be a whole number of calls, 1 or more",
                    );
                    return None;
                }
            };
            if let Err(message) = limit.check() {
                self.problem(burst.at, message);
                return None;
            }
        }
        Some(limit)
    }

    /// One of a type's own fields, by what it holds, into `settings` (a
    /// missing one is the type's relations' to report).
    fn own_field(&mut self, map: &Mapping, field: &TypeField, settings: &mut Settings) {
        let Some(n) = map.get(field.name) else {
            return;
        };
        let what = format!("`{}`", field.name);
        let value = match field.value {
            FieldValue::Secret => self.secret(n).map(Setting::Secret),
            FieldValue::Flag => Some(Setting::Flag(self.flag(map, field.name))),
            FieldValue::Text => self.scalar(n, &what).and_then(|s| {
                let text = s.as_str();
                if text.is_empty()
                    || text.len() > MAX_NAME_CHARS
                    || text.chars().any(char::is_control)
                {
                    self.problem(
                        s.at,
                        format!("{what} must be text on one line, of 1 to {MAX_NAME_CHARS} bytes"),
                    );
                    return None;
                }
                Some(Setting::Text(text.to_owned()))
            }),
            FieldValue::Choice(words) => self.scalar(n, &what).and_then(|s| {
                if words.contains(&s.as_str()) {
                    return Some(Setting::Text(s.as_str().to_owned()));
                }
                self.problem(
                    s.at,
                    format!(
                        "unknown {} {:?}; expected one of: {}",
                        field.name,
                        s.as_str(),
                        words.join(", ")
                    ),
                );
                None
            }),
            FieldValue::Duration => {
                self.scalar(n, &what)
                    .and_then(|s| match humantime::parse_duration(s.as_str()) {
                        Ok(d) if (1..=MAX_SECONDS).contains(&d.as_secs()) => {
                            Some(Setting::Seconds(d.as_secs()))
                        }
                        _ => {
                            self.problem(
                                s.at,
                                format!(
                                    "{what} must be a time from a second to 30 days, like 90s, 30m or 1h"
                                ),
                            );
                            None
                        }
                    })
            }
            FieldValue::Replication => self.replication(n, &what),
        };
        if let Some(value) = value {
            settings.insert(field.name, value);
        }
    }

    /// `{min: 2, max: 3}`: how many peers pin each CID, at least and at
    /// most (`max` may be left to the cluster's own setting).
    fn replication(&mut self, node: &Node, what: &str) -> Option<Setting> {
        let map = self.mapping(node, what)?;
        self.known_keys(map, REPLICATION_FIELDS, what);
        let mut number = |key: &str| -> Option<Option<u32>> {
            let Some(n) = map.get(key) else {
                return Some(None);
            };
            let s = self.scalar(n, &format!("`{key}`"))?;
            match s.as_str().parse::<u32>() {
                Ok(v) if (1..=MAX_REPLICATION).contains(&v) => Some(Some(v)),
                _ => {
                    self.problem(
                        s.at,
                        format!("`{key}` must be a whole number from 1 to {MAX_REPLICATION}"),
                    );
                    None
                }
            }
        };
        let (min, max) = (number("min")?, number("max")?);
        let Some(min) = min else {
            self.problem(map.start(), format!("missing field `min` in {what}"));
            return None;
        };
        if max.is_some_and(|max| max < min) {
            let at = map.get("max").map_or(map.start(), Node::at);
            self.problem(
                at,
                format!("`max` must be at least `min` ({min}) in {what}"),
            );
            return None;
        }
        Some(Setting::Replication(super::Replication {
            min: min.try_into().ok()?,
            max: max.and_then(|m| m.try_into().ok()),
        }))
    }

    /// An optional `true`/`false` field (false when absent or wrong).
    fn flag(&mut self, map: &Mapping, key: &str) -> bool {
        let what = format!("`{key}`");
        match map.get(key).map(|n| self.scalar(n, &what)) {
            None | Some(None) => false,
            Some(Some(s)) => s.as_bool().unwrap_or_else(|| {
                self.problem(s.at, format!("{what} must be true or false"));
                false
            }),
        }
    }

    /// `unpin_guard: {count: N, percent: P}`: how many of a target's pins
    /// one plan may unpin before apply asks for `--max-unpins`.
    fn unpin_guard(&mut self, node: &Node, context: &str) -> UnpinGuard {
        let mut guard = UnpinGuard::default();
        let what = format!("`unpin_guard` of {context}");
        let Some(map) = self.mapping(node, &what) else {
            return guard;
        };
        self.known_keys(map, UNPIN_GUARD_FIELDS, &what);
        for (key, value) in map.iter() {
            let Some(s) = self.scalar(value, &what) else {
                continue;
            };
            let n = s.as_str().parse::<u32>().ok();
            match (key.as_str(), n) {
                ("count", Some(n)) => guard.count = n,
                ("percent", Some(n)) if n <= 100 => guard.percent = n,
                ("count", None) => self.problem(s.at, "`count` must be a whole number"),
                ("percent", _) => {
                    self.problem(s.at, "`percent` must be a whole number from 0 to 100");
                }
                _ => {}
            }
        }
        guard
    }

    fn secret(&mut self, node: &Node) -> Option<SecretRef> {
        let s = self.scalar(node, "a credential")?;
        SecretRef::parse(s.as_str())
            .map_err(|message| self.problem(s.at, message))
            .ok()
    }

    fn defaults(
        &mut self,
        node: &Node,
        providers: &BTreeMap<String, Option<ProviderKind>>,
    ) -> Defaults {
        let Some(map) = self.mapping(node, "`defaults`") else {
            return Defaults::default();
        };
        self.known_keys(map, DEFAULTS_FIELDS, "`defaults`");
        Defaults {
            to: map.get("to").map(|to| self.targets(to, providers)),
        }
    }

    fn targets(
        &mut self,
        node: &Node,
        providers: &BTreeMap<String, Option<ProviderKind>>,
    ) -> Vec<TargetAt> {
        let Some(seq) = self.sequence(node, "`to`") else {
            return Vec::new();
        };
        if seq.is_empty() {
            self.problem(seq.at, "`to` is empty; name at least one target");
        }
        let mut targets: Vec<TargetAt> = Vec::new();
        for item in seq.iter() {
            let Some(s) = self.scalar(item, "a target") else {
                continue;
            };
            let position = s.at;
            let target = match Target::parse(s.as_str()) {
                Ok(t) => t,
                Err(message) => {
                    self.problem(position, message);
                    continue;
                }
            };
            match providers.get(target.provider.as_str()) {
                None => {
                    let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                    self.problem(
                        position,
                        format!(
                            "unknown provider `{}` in target {:?}; declared providers: {}",
                            target.provider,
                            s.as_str(),
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    continue;
                }
                // Declared, but its type is unknown: its own problem is reported.
                Some(None) => {}
                Some(Some(kind)) => {
                    if let Some(cluster) = &target.cluster {
                        if !kind.has_clusters() {
                            self.problem(
                                position,
                                format!(
                                    "provider `{}` (type {}) has no clusters; write \"{}\" instead of {:?}",
                                    target.provider,
                                    kind,
                                    target.provider,
                                    s.as_str()
                                ),
                            );
                            continue;
                        }
                        if !is_valid_name(cluster) {
                            self.problem(position, format!("invalid cluster name {cluster:?}"));
                            continue;
                        }
                    }
                }
            }
            if let Some(first) = targets.iter().find(|t| t.target == target) {
                let line = first.position.line;
                self.problem(
                    position,
                    format!("target {target} is listed twice (first at line {line})"),
                );
                continue;
            }
            targets.push(TargetAt { target, position });
        }
        targets
    }

    /// Reads the pins of the file being walked into `found`.
    fn pins(
        &mut self,
        seq: Sequence,
        defaults: Option<&[TargetAt]>,
        providers: &BTreeMap<String, Option<ProviderKind>>,
        found: &mut Found,
    ) {
        found.reserve(seq.len() * defaults.map_or(1, <[TargetAt]>::len));
        let no_targets = if self.current == 0 {
            "this pin names no targets: give it `to:` or set `defaults.to`"
        } else {
            "this pin names no targets: give it `to:`, or set `defaults.to` in this file or the main manifest"
        };
        for item in seq.items {
            let Some(map) = self.mapping(&item, "a pin") else {
                continue;
            };
            self.known_keys(map, PIN_FIELDS, "a pin");
            let cid = self.required(map, "cid", "a pin").and_then(|n| {
                let s = self.scalar(n, "`cid`")?;
                ContentId::parse(s.as_str())
                    .map_err(|message| self.problem(s.at, message))
                    .ok()
                    .map(|cid| (cid, s.at))
            });
            let name = map.get("name").and_then(|n| {
                let s = self.scalar(n, "`name`")?;
                self.text(s, "name", MAX_NAME_CHARS)
            });
            let meta = map.get("meta").map(|n| self.meta(n)).unwrap_or_default();
            let origins = map
                .get("origins")
                .map(|n| self.origins(n))
                .unwrap_or_default();
            let replication = map.get("replication").and_then(|n| {
                match self.replication(n, "`replication` of a pin")? {
                    Setting::Replication(r) => Some((r, n.at())),
                    _ => None,
                }
            });
            let explicit;
            let targets = match map.get("to") {
                Some(to) => {
                    explicit = self.targets(to, providers);
                    &explicit[..]
                }
                None => match defaults {
                    Some(d) => d,
                    None => {
                        self.problem(item.at(), no_targets);
                        continue;
                    }
                },
            };
            let Some((cid, cid_at)) = cid else {
                continue;
            };
            let place = Place {
                file: self.current,
                at: cid_at,
            };
            // Only a type that pins on several peers takes a replication.
            if let Some((_, at)) = replication {
                for t in targets {
                    if let Some(Some(kind)) = providers.get(t.target.provider.as_str())
                        && !kind.capabilities().replication
                    {
                        self.problem(
                            at,
                            format!(
                                "`replication` is for types that pin on several peers \
                                 (ipfs-cluster); provider `{}` is of type {kind}",
                                t.target.provider
                            ),
                        );
                    }
                }
            }
            let replication = replication.map(|(r, _)| r);
            let labels = Labels {
                name: name.map(Into::into),
                meta: meta.into(),
                replication,
            };
            for t in targets {
                let key = PinKey {
                    target: t.target.clone(),
                    cid: cid.canonical().to_owned(),
                };
                let pin = DesiredPin::new(
                    labels.clone(),
                    cid.written_if_not_canonical().map(Into::into),
                    origins.clone(),
                );
                found.push((key, pin, place));
            }
        }
    }

    /// Sorts the pins of every file by key, reports each key given more
    /// than once (in one file or in two) at its later places, naming the
    /// first, and keeps the first.
    /// With `owners`, also the file of each pin kept, in the same order.
    fn finish_pins(
        &mut self,
        mut found: Found,
        owners: bool,
    ) -> (Vec<(PinKey, DesiredPin)>, Vec<u32>) {
        // Among equal keys the first read comes first; duplicates meet as
        // neighbours and the list is built in one pass.
        super::pin_order::sort_by_key_then_position(&mut found);
        // Report and drop the later copies of a key, compacting in place.
        let mut kept = 0;
        for i in 0..found.len() {
            if kept > 0 && found[kept - 1].0 == found[i].0 {
                let (first, this) = (&found[kept - 1], &found[i]);
                let (first_cid, this_cid) = (first.1.sent_cid(&first.0), this.1.sent_cid(&this.0));
                let same = if first_cid == this_cid {
                    String::new()
                } else {
                    format!(" (written there as {first_cid}, the same content)")
                };
                let message = format!(
                    "CID {} is already pinned to {} at {}{same}",
                    this_cid,
                    this.0.target,
                    self.describe(first.2)
                );
                let at = this.2;
                self.problem_in(at.file, at.at, message);
            } else {
                found.swap(kept, i);
                kept += 1;
            }
        }
        found.truncate(kept);
        let owners = if owners {
            found.iter().map(|(_, _, place)| place.file).collect()
        } else {
            Vec::new()
        };
        // Reuses the allocation: no second copy of 200,000 pins.
        let pins = found.into_iter().map(|(key, pin, _)| (key, pin)).collect();
        (pins, owners)
    }

    /// `origins: [multiaddr, ...]`.
    fn origins(&mut self, node: &Node) -> Vec<String> {
        let Some(seq) = self.sequence(node, "`origins`") else {
            return Vec::new();
        };
        if let Err(message) = super::check_origin_count(seq.len()) {
            self.problem(seq.at, message);
        }
        let mut origins = Vec::new();
        for item in seq.iter() {
            let Some(s) = self.scalar(item, "an origin") else {
                continue;
            };
            match super::check_origin(s.as_str()) {
                Ok(()) => origins.push(s.as_str().to_owned()),
                Err(message) => self.problem(s.at, message),
            }
        }
        origins
    }

    fn meta(&mut self, node: &Node) -> BTreeMap<String, String> {
        let mut meta = BTreeMap::new();
        let Some(map) = self.mapping(node, "`meta`") else {
            return meta;
        };
        for (key, value) in map.iter() {
            let Some(k) = self.text(key, "meta key", MAX_META_CHARS) else {
                continue;
            };
            let Some(v) = self.scalar(value, "a meta value") else {
                continue;
            };
            if let Some(v) = self.text(v, "meta value", MAX_META_CHARS) {
                meta.insert(k, v);
            }
        }
        meta
    }

    /// A label sent to a provider: bounded, no control characters.
    fn text(&mut self, s: &Scalar, what: &str, max: usize) -> Option<String> {
        match check_label(s.as_str(), what, max) {
            Ok(()) => Some(s.as_str().to_owned()),
            Err(message) => {
                self.problem(s.at, message);
                None
            }
        }
    }

    fn known_keys(&mut self, map: &Mapping, allowed: &[&str], context: &str) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    key.at,
                    format!(
                        "unknown field `{}` in {context}; expected one of: {}",
                        key.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn required<'n>(&mut self, map: &'n Mapping, key: &str, context: &str) -> Option<&'n Node> {
        let node = map.get(key);
        if node.is_none() {
            self.problem(map.start(), format!("missing field `{key}` in {context}"));
        }
        node
    }

    fn mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n Mapping> {
        let map = node.as_mapping();
        if map.is_none() {
            self.problem(
                node.at(),
                format!("{what} must be a mapping, found {}", kind(node)),
            );
        }
        map
    }

    fn sequence<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n Sequence> {
        let seq = node.as_sequence();
        if seq.is_none() {
            self.problem(
                node.at(),
                format!("{what} must be a list, found {}", kind(node)),
            );
        }
        seq
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n Scalar> {
        match node.as_scalar() {
            Some(s) if !s.is_null() => Some(s),
            _ => {
                self.problem(
                    node.at(),
                    format!("{what} must be a string, found {}", kind(node)),
                );
                None
            }
        }
    }
}

fn kind(node: &Node) -> &'static str {
    match node {
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
        Node::Scalar(s) if s.is_null() => "nothing",
        Node::Scalar(_) => "a scalar",
    }
}
