//! What changed in the manifest between two reconciles, for watch's log:
//! the lines a person would read in `git diff`, bounded.

use similar::{ChangeTag, TextDiff};

/// Changed lines shown at most; the counts cover them all.
const MAX_LINES: usize = 20;

/// The lines added and removed between `old` and `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ManifestDiff {
    pub(crate) added: usize,
    pub(crate) removed: usize,
    /// The first changed lines, `+ line` or `- line`.
    pub(crate) lines: Vec<String>,
}

impl ManifestDiff {
    pub(super) fn between(old: &str, new: &str) -> Self {
        let mut diff = Self::default();
        for change in TextDiff::from_lines(old, new).iter_all_changes() {
            let sign = match change.tag() {
                ChangeTag::Equal => continue,
                ChangeTag::Delete => {
                    diff.removed += 1;
                    '-'
                }
                ChangeTag::Insert => {
                    diff.added += 1;
                    '+'
                }
            };
            if diff.lines.len() < MAX_LINES {
                // Control characters would corrupt a log line.
                let text: String = change
                    .value()
                    .trim_end_matches(['\n', '\r'])
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                diff.lines.push(format!("{sign} {text}"));
            }
        }
        diff
    }

    pub(super) fn is_empty(&self) -> bool {
        self.added + self.removed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_lines_are_counted_and_the_first_ones_shown() {
        let old = "pins:\n  - cid: A\n    name: a\n";
        let new = "pins:\n  - cid: A\n    name: b\n  - cid: C\n";
        let d = ManifestDiff::between(old, new);
        assert_eq!((d.added, d.removed), (2, 1));
        assert_eq!(d.lines, ["-     name: a", "+     name: b", "+   - cid: C"]);
        assert!(ManifestDiff::between(old, old).is_empty());
        let many: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let d = ManifestDiff::between("", &many);
        assert_eq!((d.added, d.lines.len()), (100, MAX_LINES));
    }
}
