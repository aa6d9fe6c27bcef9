//! Writes that run at the same time: each one lands whole or not at all, whatever its
//! neighbours do (fail, roll back, get cancelled), on both backends; and on SQLite the
//! writes that queue up together share commits.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use domain::ports::{CreateCaseOutcome, IdempotencyClaim, StoreError};
use domain::{Actor, Case, CaseId, CaseInput, EventKind, NewCase, NewEvent};
use storage::backend_test;
use storage::testing::{Backend, TestDatabase};

fn new_case() -> Case {
    let input: CaseInput = serde_json::from_value(serde_json::json!({
        "channel": "app",
        "customer": {"name": "Ada", "phone": "+86 138 0013 8000"},
        "location": {"lat": 31.2304, "lon": 121.4737, "road_kind": "urban"},
        "fault": {"category": "battery", "symptoms": ["no_crank"]},
        "service": "jump_start",
        "tier": "standard"
    }))
    .unwrap();
    let now = domain::time::to_storage_precision(Utc::now());
    NewCase::parse(input).unwrap().open(CaseId::new_v7(), now)
}

fn created(case: &Case) -> NewEvent {
    NewEvent::new(
        EventKind::Created,
        Actor::App,
        case.created_at,
        serde_json::json!({"channel": "app"}),
    )
}

fn claim(key: &str, case: &Case) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "app".to_owned(),
        key: key.to_owned(),
        request_hash: [7; 32],
        response: serde_json::json!({"case": case.id}),
        created_at: case.created_at,
    }
}

/// The case is stored whole (its row and its one `created` event) or not at all.
async fn whole_or_absent(store: &dyn domain::ports::Store, id: CaseId) -> bool {
    let case = store.get_case(id).await.unwrap();
    let timeline = store.timeline(id).await.unwrap();
    match case {
        Some(_) => timeline.len() == 1 && timeline[0].kind == EventKind::Created,
        None => timeline.is_empty(),
    }
}

backend_test!(
    failing_and_rolled_back_writes_leave_their_neighbours_intact,
    |db| async move {
        // One case exists; its key is taken.
        let first = new_case();
        let outcome = db
            .store
            .create_case(&first, &created(&first), Some(&claim("taken", &first)))
            .await
            .unwrap();
        assert!(matches!(outcome, CreateCaseOutcome::Created(_)));
        // At once: 60 new cases, 30 inserts of the existing case's id (refused by the
        // primary key in the middle of their transaction) and 30 replays of the taken
        // key (rolled back by the store).
        let mut tasks = tokio::task::JoinSet::new();
        let mut fresh = Vec::new();
        for index in 0..120 {
            let store = db.store.clone();
            let (case, key) = match index % 4 {
                0 => (first.clone(), None),
                1 => (new_case(), Some("taken".to_owned())),
                _ => (new_case(), None),
            };
            if index % 4 > 1 {
                fresh.push(case.id);
            }
            tasks.spawn(async move {
                let claim = key.map(|key| claim(&key, &case));
                (
                    index,
                    store
                        .create_case(&case, &created(&case), claim.as_ref())
                        .await,
                )
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (index, result) = joined.unwrap();
            match index % 4 {
                0 => assert!(
                    matches!(result, Err(StoreError::Conflict(_))),
                    "the duplicate id is refused: {result:?}"
                ),
                1 => match result.unwrap() {
                    CreateCaseOutcome::Replayed { case_id, .. } => assert_eq!(case_id, first.id),
                    other => panic!("expected a replay, got {other:?}"),
                },
                _ => assert!(matches!(result.unwrap(), CreateCaseOutcome::Created(_))),
            }
        }
        for id in &fresh {
            assert!(
                db.store.get_case(*id).await.unwrap().is_some(),
                "case {id} was committed"
            );
            assert!(whole_or_absent(db.store.as_ref(), *id).await);
        }
        assert!(whole_or_absent(db.store.as_ref(), first.id).await);
        assert_eq!(db.store.timeline(first.id).await.unwrap().len(), 1);
    }
);

backend_test!(
    writes_cancelled_midway_are_rolled_back_and_the_store_goes_on,
    |db| async move {
        // Requests abandoned at every point of their write: before it, inside it, while
        // it waits for its commit.
        let mut ids = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..200u64 {
            let store = db.store.clone();
            let case = new_case();
            ids.push(case.id);
            tasks.spawn(async move {
                let budget = Duration::from_micros(index * 37 % 3000);
                let _ =
                    tokio::time::timeout(budget, store.create_case(&case, &created(&case), None))
                        .await;
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
        // The store still writes, and what it writes is whole. That write is also the
        // barrier behind the abandoned ones: on SQLite it queues behind every write that
        // still held or waited for the one writer, and returns once the group of those
        // already released is committed (abandoned savepoints are rolled back first); on
        // PostgreSQL each write is a server transaction of its own, whole or absent
        // whenever it is read.
        let case = new_case();
        let outcome = db
            .store
            .create_case(&case, &created(&case), None)
            .await
            .unwrap();
        assert!(matches!(outcome, CreateCaseOutcome::Created(_)));
        assert!(whole_or_absent(db.store.as_ref(), case.id).await);
        let mut stored = 0;
        for id in &ids {
            assert!(
                whole_or_absent(db.store.as_ref(), *id).await,
                "case {id} is half stored"
            );
            if db.store.get_case(*id).await.unwrap().is_some() {
                stored += 1;
            }
        }
        assert!(
            stored < ids.len(),
            "some writes were really cancelled ({stored} stored)"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_that_queue_together_share_one_commit() {
    let db = TestDatabase::create(Backend::Sqlite).await;
    let sqlite = db.sqlite.clone().unwrap();
    let before = sqlite.commit_stats();
    let cases: Vec<Case> = (0..200).map(|_| new_case()).collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(cases.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for case in cases.clone() {
        let store = db.store.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            store
                .create_case(&case, &created(&case), None)
                .await
                .map(|_| case.id)
        });
    }
    let mut committed = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        committed.insert(joined.unwrap().unwrap());
    }
    assert_eq!(committed.len(), cases.len());
    // Every caller returned after its commit: a fresh reader sees every case.
    for case in &cases {
        assert!(db.store.get_case(case.id).await.unwrap().is_some());
    }
    let after = sqlite.commit_stats();
    let writes = after.writes - before.writes;
    let groups = after.groups - before.groups;
    assert_eq!(writes, 200, "each write was counted once");
    assert!(
        groups * 4 <= writes,
        "200 writes queued at once share commits: {groups} commits"
    );
    db.cleanup().await;
}
