//! The use cases against an in-memory store and scripted providers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;
use crate::manifest::{PinKey, ProviderConfig};
use crate::ops::{Next, PlanFrom, apply, prepare};
use crate::provider::{
    Connect, ListedPin, Listing, PinReceipt, PinRequest, Provider, ProviderError, Providers,
    UnpinReceipt, UnpinRequest,
};
use crate::retry::RetryPolicy;
use crate::state::{
    HeldLock, LockError, ProviderStatus, Recorder, State, StateFileError, StateStore, StoredPin,
};

const CID_A: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const CID_B: &str = "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaali";
const CID_C: &str = "bafkreiaaaaaaaaaaaaaqaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaali";

/// A state kept in memory; counts its saves.
#[derive(Default)]
struct MemoryStore {
    state: Mutex<State>,
    saves: Mutex<usize>,
}

struct NoLock;
impl HeldLock for NoLock {}

struct NoRecorder;
impl Recorder for NoRecorder {
    fn append(&mut self, _: u64, _: &[StoredPin], _: &[PinKey]) -> Result<(), StateFileError> {
        Ok(())
    }
}

impl StateStore for Arc<MemoryStore> {
    fn describe(&self) -> String {
        "memory".into()
    }
    fn load(&self) -> Result<State, StateFileError> {
        Ok(self.state.lock().unwrap().clone())
    }
    fn save(&self, state: &State) -> Result<(), StateFileError> {
        *self.state.lock().unwrap() = state.clone();
        *self.saves.lock().unwrap() += 1;
        Ok(())
    }
    fn recorder(&self, _: &State) -> Result<Box<dyn Recorder>, StateFileError> {
        Ok(Box::new(NoRecorder))
    }
    fn lock(&self, _: Duration, _: &str) -> Result<Box<dyn HeldLock>, LockError> {
        Ok(Box::new(NoLock))
    }
}

/// A provider whose listing is scripted: these pins, or this error.
struct Listed(Result<Vec<ListedPin>, ProviderError>);

impl Provider for Listed {
    fn pin<'a>(&'a self, _: PinRequest<'a>) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        unreachable!("the use cases here make no pin call")
    }
    fn unpin<'a>(
        &'a self,
        _: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>> {
        unreachable!("the use cases here make no unpin call")
    }
    fn status<'a>(
        &'a self,
        _: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<crate::provider::Checked, ProviderError>> {
        unreachable!("the use cases here list")
    }
    fn list<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(async { self.0.clone().map(|pins| Listing { pins, next: None }) })
    }
}

/// Connects the scripted providers, and notes which were asked for.
struct Scripted {
    providers: Providers,
    connected: Mutex<Vec<BTreeSet<String>>>,
}

impl Connect for Scripted {
    fn connect(
        &self,
        _: &BTreeMap<String, ProviderConfig>,
        used: &BTreeSet<String>,
    ) -> anyhow::Result<Providers> {
        self.connected.lock().unwrap().push(used.clone());
        Ok(self
            .providers
            .iter()
            .filter(|(name, _)| used.contains(*name))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect())
    }
}

fn scripted(providers: Vec<(&str, Listed)>) -> Scripted {
    Scripted {
        providers: providers
            .into_iter()
            .map(|(name, p)| (name.to_owned(), Arc::new(p) as Arc<dyn Provider>))
            .collect(),
        connected: Mutex::default(),
    }
}

fn listed(cid: &str, id: &str, status: ProviderStatus) -> ListedPin {
    ListedPin {
        cid: cid.into(),
        cluster: None,
        pin_id: Some(id.into()),
        status,
        name: None,
        foreign: Some(false),
    }
}

/// A manifest of CID_A and CID_B on `aioz` and `arkive`, and a workspace
/// on it whose state is `store`.
fn workspace(store: &Arc<MemoryStore>) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pins.yaml");
    std::fs::write(
        &manifest,
        format!(
            "version: 1
providers:
  aioz:
    type: aioz
    api_key: ${{K}}
    secret_key: ${{S}}
  arkive:
    type: pinarkive
    api_key: ${{K}}
defaults:
  to: [aioz, arkive/cl0-global]
pins:
  - cid: {CID_A}
  - cid: {CID_B}
"
        ),
    )
    .unwrap();
    let ws = Workspace::new(&manifest, Box::new(store.clone()))
        .lock(Duration::ZERO, "test")
        .unwrap();
    (dir, ws)
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }
}

/// The recorded pins as `provider id status`, in key order.
fn recorded(store: &MemoryStore) -> Vec<String> {
    let state = store.state.lock().unwrap();
    state
        .pins
        .iter()
        .map(|(key, record)| {
            format!(
                "{} {} {}",
                key.target,
                record.pin_id.as_deref().unwrap_or("-"),
                record.observed.as_ref().map_or("-", |o| o.status.as_str())
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn import_records_what_the_manifest_wants_and_reports_the_rest() {
    let store = Arc::new(MemoryStore::default());
    let (_dir, ws) = workspace(&store);
    let connect = scripted(vec![
        (
            "aioz",
            Listed(Ok(vec![
                listed(CID_A, "id-a", ProviderStatus::Pinned),
                listed(CID_C, "id-c", ProviderStatus::Pinned),
            ])),
        ),
        (
            "arkive",
            Listed(Err(ProviderError::Unavailable {
                status: 503,
                message: "down".into(),
            })),
        ),
    ]);
    let outcome = import(&ws, &connect, retry(), None, true).await.unwrap();
    assert_eq!(outcome.adopted, 1);
    assert!(outcome.saved);
    assert!(!outcome.succeeded(), "arkive could not be listed");
    let unmanaged = outcome.unmanaged();
    assert_eq!(unmanaged.len(), 1);
    assert_eq!(unmanaged[0].1.cid, CID_C);
    assert_eq!(recorded(&store), ["aioz id-a pinned"]);
    assert_eq!(*store.saves.lock().unwrap(), 1);

    // Printing only: the same listing, nothing written.
    let store = Arc::new(MemoryStore::default());
    let (_dir, ws) = workspace(&store);
    let outcome = import(&ws, &connect, retry(), Some("aioz"), false)
        .await
        .unwrap();
    assert_eq!(outcome.adopted, 1);
    assert!(!outcome.saved);
    assert_eq!(*store.saves.lock().unwrap(), 0);
    assert!(recorded(&store).is_empty());
    let asked = connect.connected.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        asked,
        BTreeSet::from(["aioz".to_owned()]),
        "--target's provider only"
    );

    let error = import(&ws, &connect, retry(), Some("pinata"), false)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("declares no provider `pinata`"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_records_each_providers_word_and_saves_once() {
    let store = Arc::new(MemoryStore::default());
    let (_dir, ws) = workspace(&store);
    let (m, mut state) = ws.load().unwrap();
    let nothing = scripted(vec![]);
    let refreshed = refresh(&ws, &m, &mut state, &nothing, retry(), true)
        .await
        .unwrap();
    assert!(matches!(refreshed, Refreshed::NothingRecorded));
    assert!(
        nothing.connected.lock().unwrap().is_empty(),
        "nothing connected"
    );
    assert_eq!(*store.saves.lock().unwrap(), 0);

    // Two pins recorded by an import, then one lost on the provider.
    let both = scripted(vec![(
        "aioz",
        Listed(Ok(vec![
            listed(CID_A, "id-a", ProviderStatus::Pinned),
            listed(CID_B, "id-b", ProviderStatus::Pinned),
        ])),
    )]);
    import(&ws, &both, retry(), None, true).await.unwrap();
    let serial = store.state.lock().unwrap().serial;
    let lost_one = scripted(vec![(
        "aioz",
        Listed(Ok(vec![listed(CID_A, "id-a", ProviderStatus::Pinned)])),
    )]);
    let (m, mut state) = ws.load().unwrap();
    let Refreshed::Report(report) = refresh(&ws, &m, &mut state, &lost_one, retry(), true)
        .await
        .unwrap()
    else {
        panic!("the state records pins");
    };
    assert_eq!(report.providers["aioz"].drift(), 1);
    let mut statuses = recorded(&store);
    statuses.sort();
    assert_eq!(statuses, ["aioz id-a pinned", "aioz id-b missing"]);
    assert_eq!(store.state.lock().unwrap().serial, serial + 1);

    // Without saving (plan --refresh): the state in memory learns, the
    // store does not.
    let saves = *store.saves.lock().unwrap();
    let (m, mut state) = ws.load().unwrap();
    refresh(&ws, &m, &mut state, &both, retry(), false)
        .await
        .unwrap();
    assert_eq!(*store.saves.lock().unwrap(), saves);
    assert!(
        state
            .pins
            .iter()
            .all(|(_, r)| r.observed.as_ref().unwrap().status == ProviderStatus::Pinned)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopped_workspace_stops_a_refresh_between_retries() {
    let store = Arc::new(MemoryStore::default());
    let (_dir, ws) = workspace(&store);
    let both = scripted(vec![(
        "aioz",
        Listed(Ok(vec![listed(CID_A, "id-a", ProviderStatus::Pinned)])),
    )]);
    import(&ws, &both, retry(), None, true).await.unwrap();
    let down = scripted(vec![(
        "aioz",
        Listed(Err(ProviderError::Unavailable {
            status: 503,
            message: "down".into(),
        })),
    )]);
    ws.stop().cancel();
    let (m, mut state) = ws.load().unwrap();
    let patient = RetryPolicy {
        max_attempts: 100,
        max_elapsed: Duration::from_secs(3600),
        ..RetryPolicy::default()
    };
    let started = tokio::time::Instant::now();
    let Refreshed::Report(report) = refresh(&ws, &m, &mut state, &down, patient, true)
        .await
        .unwrap()
    else {
        panic!("the state records pins");
    };
    assert!(report.errors.contains_key("aioz"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no retry waited out"
    );
}

/// A provider that pins everything, and then says it is pinned.
#[derive(Default)]
struct Pinning {
    status_calls: Mutex<usize>,
    /// Refuses every pin after the first `accept`, with this.
    refuse: Option<ProviderError>,
    accept: Mutex<usize>,
}

impl Provider for Pinning {
    fn pin<'a>(&'a self, r: PinRequest<'a>) -> BoxFuture<'a, Result<PinReceipt, ProviderError>> {
        Box::pin(async move {
            if let Some(e) = &self.refuse {
                let mut accept = self.accept.lock().unwrap();
                if *accept == 0 {
                    return Err(e.clone());
                }
                *accept -= 1;
            }
            Ok(PinReceipt {
                pin_id: Some(format!("id-{}", r.cid)),
                already_pinned: false,
                foreign: false,
            })
        })
    }
    fn unpin<'a>(
        &'a self,
        _: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<UnpinReceipt, ProviderError>> {
        Box::pin(async {
            Ok(UnpinReceipt {
                already_gone: false,
            })
        })
    }
    fn status<'a>(
        &'a self,
        _: UnpinRequest<'a>,
    ) -> BoxFuture<'a, Result<crate::provider::Checked, ProviderError>> {
        *self.status_calls.lock().unwrap() += 1;
        Box::pin(async { Ok(ProviderStatus::Pinned.into()) })
    }
    fn list<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, Result<Listing, ProviderError>> {
        Box::pin(async {
            Ok(Listing {
                pins: Vec::new(),
                next: None,
            })
        })
    }
}

fn connecting(providers: Vec<(&str, Arc<Pinning>)>) -> Scripted {
    Scripted {
        providers: providers
            .into_iter()
            .map(|(name, p)| (name.to_owned(), p as Arc<dyn Provider>))
            .collect(),
        connected: Mutex::default(),
    }
}

fn from_manifest() -> PlanFrom<'static> {
    PlanFrom::Manifest {
        refresh: false,
        options: crate::plan::PlanOptions::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn apply_pins_records_waits_and_is_then_in_sync() {
    let store = Arc::new(MemoryStore::default());
    let (_dir, ws) = workspace(&store);
    let (aioz, arkive) = (Arc::new(Pinning::default()), Arc::new(Pinning::default()));
    let connect = connecting(vec![("aioz", aioz.clone()), ("arkive", arkive.clone())]);
    let allowance = crate::plan::UnpinAllowance::default();
    let prepared = prepare(&ws, from_manifest(), &connect, retry(), allowance)
        .await
        .unwrap();
    assert_eq!(prepared.plan.summary.pin, 4, "two CIDs on two targets");
    let state = prepared.state;
    let Next::Calls(providers) = prepared.next else {
        panic!("there are calls to make");
    };
    let progress: Arc<dyn crate::apply::Progress> = Arc::new(crate::apply::Silent);
    let rounds = Mutex::new(0);
    let applied = apply(
        &ws,
        &prepared.plan,
        state,
        &providers,
        crate::apply::ApplyOptions::default(),
        Some(Duration::from_secs(60)),
        &progress,
        &|_, _, _| *rounds.lock().unwrap() += 1,
    )
    .await
    .unwrap();
    assert!(applied.succeeded());
    assert_eq!(applied.report.pinned, 4);
    assert_eq!(applied.waited.as_ref().unwrap().pinned.len(), 4);
    assert_eq!(*aioz.status_calls.lock().unwrap(), 2);
    let mut pins = recorded(&store);
    pins.sort();
    assert_eq!(pins.len(), 4);
    assert!(pins.iter().all(|p| p.ends_with(" pinned")), "{pins:?}");

    let again = prepare(&ws, from_manifest(), &connect, retry(), allowance)
        .await
        .unwrap();
    assert!(matches!(again.next, Next::InSync));
}

#[tokio::test(start_paused = true)]
async fn a_wait_asks_nothing_of_a_provider_that_refused_the_key() {
    let store = Arc::new(MemoryStore::default());
    let (_dir, ws) = workspace(&store);
    // The key is revoked after the first pin: that pin is confirmed, and
    // its wait must not ask.
    let refused = Arc::new(Pinning {
        refuse: Some(ProviderError::Unauthorized {
            status: 401,
            message: "bad key".into(),
        }),
        accept: Mutex::new(1),
        ..Pinning::default()
    });
    let fine = Arc::new(Pinning::default());
    let connect = connecting(vec![("aioz", refused.clone()), ("arkive", fine.clone())]);
    let prepared = prepare(
        &ws,
        from_manifest(),
        &connect,
        retry(),
        crate::plan::UnpinAllowance::default(),
    )
    .await
    .unwrap();
    let state = prepared.state;
    let Next::Calls(providers) = prepared.next else {
        panic!("there are calls to make");
    };
    let progress: Arc<dyn crate::apply::Progress> = Arc::new(crate::apply::Silent);
    let applied = apply(
        &ws,
        &prepared.plan,
        state,
        &providers,
        crate::apply::ApplyOptions::default(),
        Some(Duration::from_secs(60)),
        &progress,
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(!applied.succeeded());
    assert_eq!(applied.report.pinned, 3, "arkive's, and aioz's first");
    assert!(applied.report.refusing().contains_key("aioz"));
    assert_eq!(*refused.status_calls.lock().unwrap(), 0);
    assert_eq!(*fine.status_calls.lock().unwrap(), 2);
}

#[test]
fn a_copy_keeps_lineage_and_serial_and_never_goes_back() {
    let (here, there) = (
        Arc::new(MemoryStore::default()),
        Arc::new(MemoryStore::default()),
    );
    {
        let mut state = here.state.lock().unwrap();
        state.ensure_lineage();
        state.serial = 7;
    }
    let copied = state::copy(&here, &there, Duration::ZERO).unwrap();
    assert_eq!(copied.serial, 7);
    assert_eq!(*there.state.lock().unwrap(), *here.state.lock().unwrap());
    // The other store moved on: copying the older state back is refused.
    there.state.lock().unwrap().serial = 9;
    let error = state::copy(&here, &there, Duration::ZERO).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("newer state of this lineage (serial 9 against 7)"),
        "{error}"
    );
    // Another lineage is never overwritten.
    let other = Arc::new(MemoryStore::default());
    other.state.lock().unwrap().ensure_lineage();
    let error = state::copy(&here, &other, Duration::ZERO).unwrap_err();
    assert!(error.to_string().contains("another lineage"), "{error}");
    assert_eq!(*other.saves.lock().unwrap(), 0);
}

#[test]
fn a_restore_puts_the_backup_back_and_moves_the_replaced_file_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pins.state.json");
    let file = crate::state::StateFile::new(&path);
    let mut state = State::default();
    state.ensure_lineage();
    file.save(&state).unwrap();
    // The second save keeps the first as the backup.
    file.save(&state).unwrap();
    std::fs::write(&path, b"{ damaged").unwrap();
    let restored = state::restore(
        crate::state::StateLocation::File(crate::state::StateFile::new(&path)),
        None,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(restored.file, path);
    assert_eq!(restored.from, file.backup_path());
    assert_eq!(restored.state.moved_aside.len(), 1, "{restored:?}");
    assert_eq!(
        std::fs::read(&restored.state.moved_aside[0]).unwrap(),
        b"{ damaged"
    );
    assert_eq!(file.load().unwrap().lineage, state.lineage);
}

#[test]
fn a_restore_refuses_a_postgres_state_and_touches_nothing() {
    let error = state::restore(
        crate::state::StateLocation::Postgres("postgres://u:secret@127.0.0.1/db".into()),
        None,
        Duration::ZERO,
    )
    .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("keeps no backup file"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
