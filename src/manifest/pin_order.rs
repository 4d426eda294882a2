//! Sorting the manifest's pins into key order.
//!
//! At 100,000 pins on two targets a plain sort of the `(key, pin, position)`
//! entries spent its time waiting on memory: each comparison follows three
//! heap strings, each swap moves some 160 bytes, and neither fits in cache.
//! Sorting small fixed-size keys instead, then moving each entry once, gives
//! the same order for a fraction of the cost.

use std::collections::BTreeSet;

use super::{PinKey, Target};

/// Sorts `entries` by key, ties by position: the order of
/// `a.0.cmp(&b.0).then(a.2.cmp(&b.2))`.
pub(super) fn sort_by_key_then_position<T, P: Ord>(entries: &mut [(PinKey, T, P)]) {
    assert!(
        u32::try_from(entries.len()).is_ok(),
        "far more pins than a manifest can hold"
    );
    // Targets are few: rank them once instead of comparing their strings
    // in every comparison (a search of a handful beats hashing each entry;
    // a set, as cluster names are free and could be many).
    let mut seen: BTreeSet<&Target> = BTreeSet::new();
    let mut last = None;
    for (key, ..) in entries.iter() {
        if last != Some(&key.target) {
            seen.insert(&key.target);
            last = Some(&key.target);
        }
    }
    let targets: Vec<&Target> = seen.into_iter().collect();
    let rank = |target: &Target| {
        targets
            .binary_search(&target)
            .expect("every target was ranked") as u32
    };

    // 32 bytes a key; the first 37 digits of a CIDv1 (`afkrei` and 31 of
    // its digest) tell apart any two different CIDs in practice.
    struct SortKey {
        head: u128,
        tail: u64,
        target: u32,
        index: u32,
    }
    let mut keys: Vec<SortKey> = entries
        .iter()
        .enumerate()
        .map(|(index, (key, ..))| {
            let (head, tail) = key.cid.sort_prefix();
            SortKey {
                head,
                tail,
                target: rank(&key.target),
                index: index as u32,
            }
        })
        .collect();
    keys.sort_unstable_by(|a, b| {
        (a.target, a.head, a.tail)
            .cmp(&(b.target, b.head, b.tail))
            .then_with(|| {
                // Same target and the same first 37 digits: in practice
                // the same CID written twice.
                let (x, y) = (&entries[a.index as usize], &entries[b.index as usize]);
                x.0.cid.cmp(&y.0.cid).then(x.2.cmp(&y.2))
            })
    });
    let mut order: Vec<u32> = keys.into_iter().map(|k| k.index).collect();
    permute(entries, &mut order);
}

/// Rearranges `entries` so that position `i` holds what was at `order[i]`,
/// in place: each cycle of the permutation is followed once, with swaps.
/// `order` is used up (every slot ends as its own index).
fn permute<E>(entries: &mut [E], order: &mut [u32]) {
    for start in 0..entries.len() {
        let mut at = start;
        loop {
            let from = order[at] as usize;
            order[at] = at as u32;
            if from == start || from == at {
                break;
            }
            entries.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::super::Position;
    use super::*;

    fn reference_order<T>(a: &(PinKey, T, Position), b: &(PinKey, T, Position)) -> Ordering {
        a.0.cmp(&b.0).then(a.2.cmp(&b.2))
    }

    fn entry(
        provider: &str,
        cluster: Option<&str>,
        cid: &str,
        line: usize,
    ) -> (PinKey, usize, Position) {
        (
            PinKey {
                target: Target {
                    provider: provider.into(),
                    cluster: cluster.map(Into::into),
                },
                cid: cid.into(),
            },
            line,
            Position { line, column: 1 },
        )
    }

    #[test]
    fn orders_exactly_as_the_keys_then_positions_do() {
        let mut rng = fastrand::Rng::with_seed(7);
        let targets = [
            ("aioz", None),
            ("arkive", Some("cl0-global")),
            ("arkive", Some("cl0")),
            ("arkive", None),
            ("a", Some("")),
        ];
        // CIDs that share long prefixes, end early, or repeat.
        let stems = [
            "bafkreia",
            "bafkreiaaaaaaaaaaaaaaaaa",
            "b",
            "",
            "bafy\u{0}x",
        ];
        for size in [0, 1, 2, 3, 17, 500, 5_000] {
            let mut entries: Vec<_> = (0..size)
                .map(|line| {
                    let (p, c) = targets[rng.usize(..targets.len())];
                    let stem = stems[rng.usize(..stems.len())];
                    let tail: String = (0..rng.usize(0..40))
                        .map(|_| ['a', 'b', 'z', '2'][rng.usize(..4)])
                        .collect();
                    entry(p, c, &format!("{stem}{tail}"), line)
                })
                .collect();
            // Repeat some entries later in the file (duplicates to report).
            for i in 0..size / 10 {
                let mut copy = entries[i * 7 % size].clone();
                copy.2.line += size;
                entries.push(copy);
            }
            rng.shuffle(&mut entries);
            let mut expected = entries.clone();
            expected.sort_by(reference_order);
            sort_by_key_then_position(&mut entries);
            assert_eq!(entries, expected, "size {size}");
        }
    }

    #[test]
    fn permute_follows_every_cycle() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e', 'f'];
        // Cycles (0 3 1)(2)(4 5).
        let mut order = vec![3, 0, 2, 1, 5, 4];
        permute(&mut items, &mut order);
        assert_eq!(items, vec!['d', 'a', 'c', 'b', 'f', 'e']);
    }
}
