//! The state's pins: a map from [`PinKey`] to [`PinRecord`] that costs
//! little more than its entries.
//!
//! A state of a million pins on two targets is two million records, loaded
//! whole for every plan. A `BTreeMap` holding them leaves its nodes about
//! half full after sorted inserts, so most of its memory is slack. Here the
//! pins loaded sit in one sorted `Vec`, looked up by binary search; pins
//! added afterwards (an apply records them one at a time) go to a small
//! `BTreeMap` beside it, and a removed pin leaves a tombstone in the `Vec`
//! rather than shifting everything after it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, btree_map};
use std::fmt;
use std::iter::{FusedIterator, Peekable};

use super::PinRecord;
use crate::manifest::PinKey;

/// A loaded pin, or `None` where it was removed since (a tombstone).
type Entry = (PinKey, Option<PinRecord>);

/// The pins of a [`super::State`], ordered by key, with the methods of a
/// `BTreeMap<PinKey, PinRecord>`.
#[derive(Clone, Default)]
pub(crate) struct PinTable {
    /// Sorted by key, each key once. A key here is never in `added`.
    sorted: Vec<Entry>,
    /// Pins inserted under a key that `sorted` does not hold.
    added: BTreeMap<PinKey, PinRecord>,
    /// Live pins: `added` plus the entries of `sorted` that are not tombstones.
    len: usize,
}

impl PinTable {
    /// An empty table.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Where `key` is in `sorted`, if it is there (alive or not).
    fn position(&self, key: &PinKey) -> Option<usize> {
        self.sorted.binary_search_by(|(k, _)| k.cmp(key)).ok()
    }

    /// The record of `key`, if it holds one.
    pub(crate) fn get(&self, key: &PinKey) -> Option<&PinRecord> {
        match self.position(key) {
            Some(i) => self.sorted[i].1.as_ref(),
            None => self.added.get(key),
        }
    }

    /// The record of `key`, to change in place.
    pub(crate) fn get_mut(&mut self, key: &PinKey) -> Option<&mut PinRecord> {
        match self.position(key) {
            Some(i) => self.sorted[i].1.as_mut(),
            None => self.added.get_mut(key),
        }
    }

    /// Whether `key` has a record.
    pub(crate) fn contains_key(&self, key: &PinKey) -> bool {
        self.get(key).is_some()
    }

    /// Sets the record of `key`, giving back the one it replaces.
    pub(crate) fn insert(&mut self, key: PinKey, record: PinRecord) -> Option<PinRecord> {
        let old = match self.position(&key) {
            // A tombstone comes back to life in place, so that the key
            // stays out of `added`.
            Some(i) => self.sorted[i].1.replace(record),
            None => self.added.insert(key, record),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the record of `key` and gives it back.
    pub(crate) fn remove(&mut self, key: &PinKey) -> Option<PinRecord> {
        let old = match self.position(key) {
            Some(i) => self.sorted[i].1.take(),
            None => self.added.remove(key),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// How many pins it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no pin.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every pin, and frees their memory.
    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The pins in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter(Merge::new(
            Live(self.sorted.iter()),
            self.added.iter(),
            self.len,
        ))
    }

    /// The pins in key order, their records to change in place.
    pub(crate) fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(Merge::new(
            LiveMut(self.sorted.iter_mut()),
            self.added.iter_mut(),
            self.len,
        ))
    }

    /// The keys, in order.
    pub(crate) fn keys(&self) -> Keys<'_> {
        Keys(self.iter())
    }

    /// The records, in key order.
    #[cfg(test)]
    pub(crate) fn values(&self) -> Values<'_> {
        Values(self.iter())
    }

    /// The records, in key order, to change in place.
    #[cfg(test)]
    pub(crate) fn values_mut(&mut self) -> ValuesMut<'_> {
        ValuesMut(self.iter_mut())
    }
}

/// Builds a [`PinTable`] from pins as they are read, in whatever order:
/// in key order (as a state file is written) they are kept as they come,
/// otherwise they are sorted once at the end.
pub(crate) struct PinTableBuilder {
    sorted: Vec<Entry>,
    /// Whether every key so far came after the one before it.
    in_order: bool,
}

impl Default for PinTableBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl PinTableBuilder {
    /// Room for `capacity` pins before the first reallocation.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            sorted: Vec::with_capacity(capacity),
            in_order: true,
        }
    }

    /// Room for `additional` more pins if the memory is there: a hint, as
    /// without it the list grows as it goes.
    pub(crate) fn try_reserve(&mut self, additional: usize) {
        let _ = self.sorted.try_reserve_exact(additional);
    }

    /// Adds the next pin read.
    pub(crate) fn push(&mut self, key: PinKey, mut record: PinRecord) {
        if let Some((last, previous)) = self.sorted.last() {
            self.in_order &= *last < key;
            // Pins confirmed in the same second (one batch of an apply,
            // neighbours in key order) share one copy of the timestamp.
            if let Some(previous) = previous
                && previous.pinned_at == record.pinned_at
            {
                record.pinned_at = previous.pinned_at.clone();
            }
        }
        self.sorted.push((key, Some(record)));
    }

    /// The table; `Err` with a key pushed more than once.
    pub(crate) fn build(mut self) -> Result<PinTable, PinKey> {
        if !self.in_order {
            self.sort();
            if let Some(twice) = self.sorted.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(twice[0].0.clone());
            }
        }
        Ok(self.into_table())
    }

    /// The table, where a key pushed more than once keeps its last record.
    fn build_last_wins(mut self) -> PinTable {
        if !self.in_order {
            self.sort();
            // `dedup_by` drops the later of two equal neighbours: move its
            // record into the one kept first.
            self.sorted.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(later, kept);
                }
                same
            });
        }
        self.into_table()
    }

    /// Stable, so that equal keys keep the order they were pushed in.
    fn sort(&mut self) {
        self.sorted.sort_by(|a, b| a.0.cmp(&b.0));
    }

    fn into_table(self) -> PinTable {
        PinTable {
            len: self.sorted.len(),
            sorted: self.sorted,
            added: BTreeMap::new(),
        }
    }
}

impl FromIterator<(PinKey, PinRecord)> for PinTable {
    /// As a `BTreeMap`: a key given twice keeps its last record.
    fn from_iter<I: IntoIterator<Item = (PinKey, PinRecord)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut builder = PinTableBuilder::with_capacity(iter.size_hint().0);
        for (key, record) in iter {
            builder.push(key, record);
        }
        builder.build_last_wins()
    }
}

impl std::ops::Index<&PinKey> for PinTable {
    type Output = PinRecord;

    fn index(&self, key: &PinKey) -> &PinRecord {
        self.get(key).expect("no pin for key")
    }
}

/// Equal when they hold the same pins, however each splits them between
/// `sorted` and `added`.
impl PartialEq for PinTable {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for PinTable {}

impl fmt::Debug for PinTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a PinTable {
    type Item = (&'a PinKey, &'a PinRecord);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut PinTable {
    type Item = (&'a PinKey, &'a mut PinRecord);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

/// The entries of `sorted` that are not tombstones.
struct Live<'a>(std::slice::Iter<'a, Entry>);

impl<'a> Iterator for Live<'a> {
    type Item = (&'a PinKey, &'a PinRecord);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.find_map(|(k, r)| Some((k, r.as_ref()?)))
    }
}

/// [`Live`], its records to change in place.
struct LiveMut<'a>(std::slice::IterMut<'a, Entry>);

impl<'a> Iterator for LiveMut<'a> {
    type Item = (&'a PinKey, &'a mut PinRecord);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.find_map(|(k, r)| Some((&*k, r.as_mut()?)))
    }
}

/// Two iterators of distinct keys in order, merged into one in order.
struct Merge<A: Iterator, B: Iterator> {
    sorted: Peekable<A>,
    added: Peekable<B>,
    /// Pins not yet given, for an exact `size_hint`.
    left: usize,
}

impl<A: Iterator, B: Iterator> Merge<A, B> {
    fn new(sorted: A, added: B, len: usize) -> Self {
        Self {
            sorted: sorted.peekable(),
            added: added.peekable(),
            left: len,
        }
    }
}

impl<'a, V, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (&'a PinKey, V)>,
    B: Iterator<Item = (&'a PinKey, V)>,
{
    type Item = (&'a PinKey, V);

    fn next(&mut self) -> Option<Self::Item> {
        let from_sorted = match (self.sorted.peek(), self.added.peek()) {
            (Some((s, _)), Some((a, _))) => s.cmp(a) == Ordering::Less,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let next = if from_sorted {
            self.sorted.next()
        } else {
            self.added.next()
        };
        if next.is_some() {
            self.left -= 1;
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// A newtype iterator over `$inner`, its items mapped by `$map`: the
/// iterators a map has, each with its own name as `btree_map`'s.
macro_rules! table_iterator {
    ($(#[$doc:meta])* $name:ident($inner:ty) -> $item:ty, $map:expr) => {
        $(#[$doc])*
        pub(crate) struct $name<'a>($inner);

        impl<'a> Iterator for $name<'a> {
            type Item = $item;

            fn next(&mut self) -> Option<$item> {
                self.0.next().map($map)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.0.size_hint()
            }
        }

        impl ExactSizeIterator for $name<'_> {}
        impl FusedIterator for $name<'_> {}
    };
}

table_iterator!(
    /// The pins of a [`PinTable`] in key order ([`PinTable::iter`]).
    Iter(Merge<Live<'a>, btree_map::Iter<'a, PinKey, PinRecord>>) -> (&'a PinKey, &'a PinRecord),
    |pin| pin
);
table_iterator!(
    /// The pins of a [`PinTable`] in key order, mutable ([`PinTable::iter_mut`]).
    IterMut(Merge<LiveMut<'a>, btree_map::IterMut<'a, PinKey, PinRecord>>)
        -> (&'a PinKey, &'a mut PinRecord),
    |pin| pin
);
table_iterator!(
    /// The keys of a [`PinTable`] in order ([`PinTable::keys`]).
    Keys(Iter<'a>) -> &'a PinKey,
    |(key, _)| key
);
#[cfg(test)]
table_iterator!(
    /// The records of a [`PinTable`] in key order ([`PinTable::values`]).
    Values(Iter<'a>) -> &'a PinRecord,
    |(_, record)| record
);
#[cfg(test)]
table_iterator!(
    /// The records of a [`PinTable`] in key order, mutable
    /// ([`PinTable::values_mut`]).
    ValuesMut(IterMut<'a>) -> &'a mut PinRecord,
    |(_, record)| record
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{CanonicalCid, Labels, Target};
    use crate::state::PinStatus;

    fn key(target: &str, n: u32) -> PinKey {
        let (provider, cluster) = match target.split_once('/') {
            Some((p, c)) => (p, Some(c.into())),
            None => (target, None),
        };
        PinKey {
            target: Target {
                provider: provider.into(),
                cluster,
            },
            cid: CanonicalCid::for_test(&format!("bafy{n}")),
        }
    }

    fn record(n: u32) -> PinRecord {
        PinRecord {
            cid_as_pinned: None,
            labels: Labels {
                name: Some(format!("p{n}").into()),
                meta: Default::default(),
                replication: None,
            },
            pin_id: None,
            pinned_at: "2026-01-01T00:00:00Z".into(),
            status: PinStatus::Managed,
            observed: None,
            foreign: false,
        }
    }

    fn assert_same(table: &PinTable, map: &BTreeMap<PinKey, PinRecord>) {
        assert_eq!(table.len(), map.len());
        assert_eq!(table.is_empty(), map.is_empty());
        assert!(table.iter().eq(map.iter()), "{table:?} != {map:?}");
        assert_eq!(table.iter().len(), map.len());
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_record_and_an_entry_stay_small() {
        // Two million of each in a state of a million pins on two targets;
        // 8 bytes of a record are the replication an ipfs-cluster pin keeps.
        assert_eq!(size_of::<PinRecord>(), 80);
        assert_eq!(size_of::<PinKey>(), 56);
        assert_eq!(size_of::<Entry>(), 136);
    }

    #[test]
    fn a_timestamp_is_shared_by_the_neighbours_that_repeat_it() {
        let mut builder = PinTableBuilder::default();
        let at = |text: &str| PinRecord {
            pinned_at: text.into(),
            ..record(0)
        };
        builder.push(key("aioz", 1), at("2026-01-01T00:00:00Z"));
        builder.push(key("aioz", 2), at("2026-01-01T00:00:00Z"));
        builder.push(key("aioz", 3), at("2026-01-01T00:00:01Z"));
        let table = builder.build().unwrap();
        let stamps: Vec<&crate::state::ThinStr> = table.values().map(|r| &r.pinned_at).collect();
        assert!(stamps[0].ptr_eq(stamps[1]));
        assert_eq!(&**stamps[2], "2026-01-01T00:00:01Z");
    }

    #[test]
    fn a_tombstone_costs_no_byte() {
        assert_eq!(
            size_of::<Option<PinRecord>>(),
            size_of::<PinRecord>(),
            "the niche of PinRecord holds the None"
        );
    }

    #[test]
    fn random_operations_match_a_btree_map() {
        let mut rng = fastrand::Rng::with_seed(20260101);
        let targets = ["aioz", "arkive/cl0-global", "psa"];
        let random_key = |rng: &mut fastrand::Rng| key(targets[rng.usize(..3)], rng.u32(..300));
        for round in 0..20 {
            // Loaded from a random share of the key space, in any order.
            let loaded: Vec<(PinKey, PinRecord)> = (0..rng.usize(..200))
                .map(|_| (random_key(&mut rng), record(rng.u32(..))))
                .collect();
            let mut map: BTreeMap<PinKey, PinRecord> = loaded.iter().cloned().collect();
            let mut table: PinTable = loaded.into_iter().collect();
            assert_same(&table, &map);
            for step in 0..500 {
                let k = random_key(&mut rng);
                let n = rng.u32(..);
                match rng.u8(..4) {
                    0 => assert_eq!(table.insert(k.clone(), record(n)), map.insert(k, record(n))),
                    1 => assert_eq!(table.remove(&k), map.remove(&k)),
                    2 => {
                        assert_eq!(table.get(&k), map.get(&k));
                        assert_eq!(table.contains_key(&k), map.contains_key(&k));
                    }
                    _ => {
                        let (t, m) = (table.get_mut(&k), map.get_mut(&k));
                        assert_eq!(t.is_some(), m.is_some());
                        if let (Some(t), Some(m)) = (t, m) {
                            t.pin_id = Some(format!("{n}").into());
                            m.pin_id = Some(format!("{n}").into());
                        }
                    }
                }
                assert_same(&table, &map);
                if step % 100 == 0 {
                    for ((_, t), m) in table.iter_mut().zip(map.values_mut()) {
                        t.foreign = !t.foreign;
                        m.foreign = !m.foreign;
                    }
                    assert_same(&table, &map);
                }
            }
            assert!(table.keys().eq(map.keys()), "round {round}");
            assert!(table.values().eq(map.values()), "round {round}");
            let rebuilt: PinTable = map.clone().into_iter().collect();
            assert_eq!(table, rebuilt, "equal whatever the split");
            assert_eq!(table.clone(), table);
        }
    }

    #[test]
    fn pins_loaded_out_of_order_are_sorted() {
        let keys = [
            key("psa", 1),
            key("aioz", 2),
            key("arkive/cl1", 3),
            key("aioz", 1),
        ];
        let mut builder = PinTableBuilder::with_capacity(0);
        for (n, k) in (0..).zip(&keys) {
            builder.push(k.clone(), record(n));
        }
        let table = builder.build().unwrap();
        let mut expected = keys.to_vec();
        expected.sort();
        assert!(table.keys().eq(&expected));
        assert_eq!(table[&key("aioz", 2)], record(1));
    }

    #[test]
    fn a_key_loaded_twice_is_refused_and_collected_twice_keeps_the_last() {
        let mut builder = PinTableBuilder::default();
        for (k, n) in [
            (key("aioz", 2), 0),
            (key("aioz", 1), 1),
            (key("aioz", 2), 2),
        ] {
            builder.push(k, record(n));
        }
        assert_eq!(builder.build().unwrap_err(), key("aioz", 2));

        let table: PinTable = [
            (key("aioz", 2), 0),
            (key("aioz", 1), 1),
            (key("aioz", 2), 2),
        ]
        .into_iter()
        .map(|(k, n)| (k, record(n)))
        .collect();
        assert_eq!(table.len(), 2);
        assert_eq!(table[&key("aioz", 2)], record(2));
    }

    #[test]
    fn clear_empties_both_halves() {
        let mut table: PinTable = [(key("aioz", 1), record(1))].into_iter().collect();
        table.insert(key("aioz", 2), record(2));
        table.clear();
        assert!(table.is_empty());
        assert_eq!(table.iter().next(), None);
        assert_eq!(table, PinTable::new());
    }
}
