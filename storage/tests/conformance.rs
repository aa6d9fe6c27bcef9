//! The storage conformance suite: one behavioural story, run against SQLite and against
//! PostgreSQL. Every test here exists twice (`<name>::sqlite`, `<name>::postgres`).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use domain::ports::{
    CaseFilter, CreateCaseOutcome, IdempotencyClaim, NewSession, StoreError, Transition,
};
use domain::{
    Actor, Case, CaseId, CaseInput, CaseStatus, Channel, EventKind, NewCase, NewEvent, Provider,
    ProviderId, Role, Service, Timestamp, User, UserId,
};
use storage::backend_test;
use storage::testing::TestDatabaseHandle;

fn at(seconds: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn new_case(channel: &str, service: &str, now: Timestamp) -> Case {
    let input: CaseInput = serde_json::from_value(serde_json::json!({
        "channel": channel,
        "customer": {"name": "李雷", "phone": "+86 138 0013 8000", "member_id": "P-001", "plate": "沪B67890",
                     "vehicle_model": "BYD Han", "powertrain": "ev"},
        "location": {"lat": 31.2304, "lon": 121.4737, "accuracy_m": 12.5, "address": "人民广场", "road_kind": "urban"},
        "fault": {"category": "battery", "symptoms": ["no_crank", "clicking"], "description": "dead"},
        "service": service,
        "tier": "premium"
    }))
    .unwrap();
    NewCase::parse(input).unwrap().open(CaseId::new_v7(), now)
}

fn created_event(now: Timestamp) -> NewEvent {
    NewEvent::new(
        EventKind::Created,
        Actor::App,
        now,
        serde_json::json!({"channel": "app"}),
    )
}

async fn create(db: &TestDatabaseHandle, case: &Case) -> Case {
    match db
        .store
        .create_case(case, &created_event(case.created_at), None)
        .await
        .unwrap()
    {
        CreateCaseOutcome::Created(case) => *case,
        other => panic!("expected a new case, got {other:?}"),
    }
}

fn transition(to: CaseStatus, seconds: i64) -> Transition {
    Transition {
        to,
        expected_from: None,
        actor: Actor::System,
        at: at(seconds),
        reason: Some("test".into()),
    }
}

backend_test!(
    a_created_case_reads_back_with_every_field,
    |db| async move {
        let case = new_case("app", "jump_start", at(0));
        let stored = create(&db, &case).await;
        let read = db
            .store
            .get_case(case.id)
            .await
            .unwrap()
            .expect("case exists");
        assert_eq!(read, stored);
        assert_eq!(read.customer.name.as_deref(), Some("李雷"));
        assert_eq!(read.customer.phone.as_str(), "+8613800138000");
        assert_eq!(read.location.position.lat(), 31.2304);
        assert_eq!(read.fault.symptoms, vec!["no_crank", "clicking"]);
        assert_eq!(read.status, CaseStatus::New);
        assert_eq!(read.created_at, at(0));
        let timeline = db.store.timeline(case.id).await.unwrap();
        assert_eq!(timeline.len(), 1);
        assert_eq!((timeline[0].seq, timeline[0].kind), (1, EventKind::Created));
        assert_eq!(timeline[0].actor, Actor::App);
    }
);

backend_test!(an_unknown_case_is_none_and_cannot_change, |db| async move {
    let missing = CaseId::new_v7();
    assert!(db.store.get_case(missing).await.unwrap().is_none());
    assert!(matches!(
        db.store
            .transition_case(missing, &transition(CaseStatus::Dispatching, 1))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.store.append_event(missing, &created_event(at(1))).await,
        Err(StoreError::NotFound)
    ));
});

backend_test!(
    transitions_follow_the_machine_and_record_the_change,
    |db| async move {
        let case = create(&db, &new_case("app", "tow", at(0))).await;
        let path = [
            CaseStatus::Dispatching,
            CaseStatus::Escalated,
            CaseStatus::Dispatching,
            CaseStatus::Assigned,
            CaseStatus::EnRoute,
            CaseStatus::OnScene,
            CaseStatus::Completed,
        ];
        for (step, status) in path.iter().enumerate() {
            let (updated, event) = db
                .store
                .transition_case(case.id, &transition(*status, step as i64 + 1))
                .await
                .unwrap();
            assert_eq!(updated.status, *status);
            assert_eq!(updated.updated_at, at(step as i64 + 1));
            assert_eq!(event.kind, EventKind::StatusChanged);
            assert_eq!(event.data["to"], status.as_str());
        }
        let timeline = db.store.timeline(case.id).await.unwrap();
        let seqs: Vec<i64> = timeline.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
        assert_eq!(timeline[1].data["from"], "new");
        assert_eq!(timeline[7].data["from"], "on_scene");
    }
);

backend_test!(
    an_illegal_transition_is_refused_and_writes_nothing,
    |db| async move {
        let case = create(&db, &new_case("app", "tow", at(0))).await;
        let refused = db
            .store
            .transition_case(case.id, &transition(CaseStatus::Completed, 5))
            .await;
        assert!(
            matches!(refused, Err(StoreError::IllegalTransition(t)) if t.from == CaseStatus::New)
        );
        let read = db.store.get_case(case.id).await.unwrap().unwrap();
        assert_eq!(read.status, CaseStatus::New);
        assert_eq!(
            read.updated_at,
            at(0),
            "a refused change must not touch the case"
        );
        assert_eq!(db.store.timeline(case.id).await.unwrap().len(), 1);
        // A later legal change still gets the next sequence number.
        let (_, event) = db
            .store
            .transition_case(case.id, &transition(CaseStatus::Cancelled, 6))
            .await
            .unwrap();
        assert_eq!(event.seq, 2);
        // Terminal: nothing more.
        let refused = db
            .store
            .transition_case(case.id, &transition(CaseStatus::Dispatching, 7))
            .await;
        assert!(matches!(refused, Err(StoreError::IllegalTransition(_))));
    }
);

backend_test!(
    a_transition_with_a_stale_expectation_is_a_conflict,
    |db| async move {
        let case = create(&db, &new_case("app", "tow", at(0))).await;
        let mut stale = transition(CaseStatus::Escalated, 1);
        stale.expected_from = Some(CaseStatus::Dispatching);
        assert!(matches!(
            db.store.transition_case(case.id, &stale).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(db.store.timeline(case.id).await.unwrap().len(), 1);
    }
);

backend_test!(
    concurrent_changes_to_one_case_get_gapless_sequence_numbers,
    |db| async move {
        let case = create(&db, &new_case("app", "tow", at(0))).await;
        let mut tasks = Vec::new();
        for index in 0..40 {
            let store = db.store.clone();
            tasks.push(tokio::spawn(async move {
                let note = NewEvent::new(
                    EventKind::NoteAdded,
                    Actor::System,
                    at(index),
                    serde_json::json!({"n": index}),
                );
                store.append_event(case.id, &note).await.unwrap()
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let seqs: Vec<i64> = db
            .store
            .timeline(case.id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=41).collect::<Vec<_>>());
    }
);

backend_test!(racing_transitions_apply_exactly_one, |db| async move {
    // Twenty callers try to cancel the same case at once: exactly one succeeds.
    let case = create(&db, &new_case("app", "tow", at(0))).await;
    let mut tasks = Vec::new();
    for index in 0..20 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transition_case(case.id, &transition(CaseStatus::Cancelled, index))
                .await
                .is_ok()
        }));
    }
    let mut successes = 0;
    for task in tasks {
        successes += usize::from(task.await.unwrap());
    }
    assert_eq!(successes, 1);
    assert_eq!(db.store.timeline(case.id).await.unwrap().len(), 2);
});

backend_test!(
    the_timeline_is_append_only_in_the_database_itself,
    |db| async move {
        let case = create(&db, &new_case("app", "tow", at(0))).await;
        let update = "UPDATE case_events SET kind = 'note_added'";
        let delete = "DELETE FROM case_events";
        if let Some(sqlite) = &db.sqlite {
            let error = sqlx::query(update)
                .execute(sqlite.raw_pool())
                .await
                .unwrap_err();
            assert!(error.to_string().contains("append-only"), "{error}");
            let error = sqlx::query(delete)
                .execute(sqlite.raw_pool())
                .await
                .unwrap_err();
            assert!(error.to_string().contains("append-only"), "{error}");
        }
        if let Some(postgres) = &db.postgres {
            for statement in [update, delete, "TRUNCATE case_events"] {
                let error = sqlx::query(statement)
                    .execute(postgres.raw_pool())
                    .await
                    .unwrap_err();
                assert!(
                    error.to_string().contains("append-only")
                        || error.to_string().contains("permission denied"),
                    "{error}"
                );
            }
        }
        assert_eq!(db.store.timeline(case.id).await.unwrap().len(), 1);
    }
);

backend_test!(
    lists_filter_by_status_channel_and_service_newest_first,
    |db| async move {
        let mut ids = Vec::new();
        for (index, (channel, service)) in [
            ("app", "tow"),
            ("hotline", "tow"),
            ("app", "jump_start"),
            ("app", "tow"),
        ]
        .into_iter()
        .enumerate()
        {
            let case = create(&db, &new_case(channel, service, at(index as i64))).await;
            ids.push(case.id);
        }
        db.store
            .transition_case(ids[3], &transition(CaseStatus::Dispatching, 10))
            .await
            .unwrap();

        let all = db
            .store
            .list_cases(&CaseFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|c| c.id).collect::<Vec<_>>(),
            ids.iter().rev().copied().collect::<Vec<_>>()
        );

        let tows_from_app = db
            .store
            .list_cases(&CaseFilter {
                channel: Some(Channel::App),
                service: Some(Service::Tow),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            tows_from_app.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![ids[3], ids[0]]
        );

        let new_ones = db
            .store
            .list_cases(&CaseFilter {
                statuses: vec![CaseStatus::New],
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(new_ones.len(), 3);

        let both = db
            .store
            .list_cases(&CaseFilter {
                statuses: vec![CaseStatus::New, CaseStatus::Dispatching],
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(both.len(), 4);

        let window = db
            .store
            .list_cases(&CaseFilter {
                created_from: Some(at(1)),
                created_to: Some(at(3)),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            window.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
    }
);

backend_test!(keyset_paging_visits_every_case_once, |db| async move {
    let mut created = HashSet::new();
    for index in 0..23 {
        created.insert(create(&db, &new_case("app", "tow", at(index))).await.id);
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = db
            .store
            .list_cases(&CaseFilter {
                before,
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        before = page.last().map(|c| c.id);
        seen.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), created);
    assert!(
        seen.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );
});

fn claim(scope: &str, key: &str, body: &str, case_id: CaseId) -> IdempotencyClaim {
    use sha2_free_hash as hash;
    IdempotencyClaim {
        scope: scope.into(),
        key: key.into(),
        request_hash: hash(body),
        response: serde_json::json!({"case": {"id": case_id}}),
        created_at: at(0),
    }
}

/// A stand-in digest for the tests (the server uses SHA-256); any 32 bytes that differ
/// with the body will do.
fn sha2_free_hash(body: &str) -> [u8; 32] {
    let mut digest = [0u8; 32];
    for (index, byte) in body.bytes().enumerate() {
        digest[index % 32] = digest[index % 32].wrapping_mul(31).wrapping_add(byte);
    }
    digest
}

backend_test!(
    an_idempotency_key_replays_the_first_response_and_creates_nothing,
    |db| async move {
        let first = new_case("app", "tow", at(0));
        let outcome = db
            .store
            .create_case(
                &first,
                &created_event(at(0)),
                Some(&claim("app", "k-1", "body", first.id)),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, CreateCaseOutcome::Created(_)));

        let retry = new_case("app", "tow", at(1));
        let outcome = db
            .store
            .create_case(
                &retry,
                &created_event(at(1)),
                Some(&claim("app", "k-1", "body", retry.id)),
            )
            .await
            .unwrap();
        match outcome {
            CreateCaseOutcome::Replayed {
                case_id,
                request_hash,
                response,
            } => {
                assert_eq!(case_id, first.id);
                assert_eq!(request_hash, sha2_free_hash("body"));
                assert_eq!(response["case"]["id"], serde_json::json!(first.id));
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert!(db.store.get_case(retry.id).await.unwrap().is_none());
        assert_eq!(
            db.store
                .list_cases(&CaseFilter {
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len(),
            1
        );

        // Another caller's identical key is a different key.
        let other = new_case("app", "tow", at(2));
        let outcome = db
            .store
            .create_case(
                &other,
                &created_event(at(2)),
                Some(&claim("agent:x", "k-1", "body", other.id)),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, CreateCaseOutcome::Created(_)));
    }
);

backend_test!(
    concurrent_requests_with_one_key_create_one_case,
    |db| async move {
        let mut tasks = Vec::new();
        for index in 0..16 {
            let store = db.store.clone();
            tasks.push(tokio::spawn(async move {
                let case = new_case("app", "tow", at(index));
                let claim = claim("app", "same-key", "body", case.id);
                store
                    .create_case(&case, &created_event(at(index)), Some(&claim))
                    .await
                    .unwrap()
            }));
        }
        let mut created = 0;
        let mut replayed_ids = HashSet::new();
        for task in tasks {
            match task.await.unwrap() {
                CreateCaseOutcome::Created(_) => created += 1,
                CreateCaseOutcome::Replayed { case_id, .. } => {
                    replayed_ids.insert(case_id);
                }
            }
        }
        assert_eq!(created, 1);
        assert_eq!(replayed_ids.len(), 1);
        assert_eq!(
            db.store
                .list_cases(&CaseFilter {
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

fn provider(name: &str) -> Provider {
    Provider {
        id: ProviderId::new_v7(),
        name: name.into(),
        webhook_url: Some("https://tow.example/hook".into()),
        service_area: Some(
            serde_json::json!({"type": "Polygon", "coordinates": [[[121.3,31.0],[121.8,31.0],[121.8,31.4],[121.3,31.0]]]}),
        ),
        priority: 3,
        webhook_secret_generation: 1,
        webhook_secret_rotated_at: None,
        created_at: at(0),
    }
}

backend_test!(
    providers_are_found_by_the_hash_of_their_key,
    |db| async move {
        let pudong = provider("Pudong Towing");
        db.store.insert_provider(&pudong, &[7; 32]).await.unwrap();
        assert_eq!(
            db.store.provider_by_api_key_hash(&[7; 32]).await.unwrap(),
            Some(pudong.clone())
        );
        assert_eq!(
            db.store.provider_by_api_key_hash(&[8; 32]).await.unwrap(),
            None
        );
        assert_eq!(
            db.store.get_provider(pudong.id).await.unwrap(),
            Some(pudong)
        );
        let clash = db.store.insert_provider(&provider("Clash"), &[7; 32]).await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))));
    }
);

fn user(username: &str, role: Role) -> User {
    User {
        id: UserId::new_v7(),
        username: username.into(),
        display_name: Some("Ann".into()),
        role,
        skills: vec!["key_fob".into(), "ev".into()],
        created_at: at(0),
    }
}

backend_test!(
    users_have_unique_names_and_sessions_expire,
    |db| async move {
        let ann = user("ann", Role::Expert);
        db.store.insert_user(&ann, "$argon2id$fake").await.unwrap();
        assert!(matches!(
            db.store.insert_user(&user("ann", Role::Agent), "x").await,
            Err(StoreError::Conflict(_))
        ));
        let (found, hash) = db.store.user_credentials("ann").await.unwrap().unwrap();
        assert_eq!(
            (found.clone(), hash.as_str()),
            (ann.clone(), "$argon2id$fake")
        );
        assert_eq!(db.store.get_user(ann.id).await.unwrap(), Some(ann.clone()));
        assert!(db.store.user_credentials("bob").await.unwrap().is_none());

        let session = NewSession {
            token_hash: [1; 32],
            user_id: ann.id,
            created_at: at(0),
            expires_at: at(3600),
        };
        db.store.insert_session(&session).await.unwrap();
        assert_eq!(
            db.store.session_user(&[1; 32], at(3599)).await.unwrap(),
            Some(ann.clone())
        );
        assert_eq!(
            db.store.session_user(&[1; 32], at(3600)).await.unwrap(),
            None,
            "expired at its expiry"
        );
        assert_eq!(db.store.session_user(&[2; 32], at(1)).await.unwrap(), None);
        db.store.delete_session(&[1; 32]).await.unwrap();
        assert_eq!(db.store.session_user(&[1; 32], at(1)).await.unwrap(), None);
    }
);

backend_test!(
    purging_removes_expired_sessions_and_old_keys_only,
    |db| async move {
        let ann = user("ann", Role::Agent);
        db.store.insert_user(&ann, "h").await.unwrap();
        for (byte, expires) in [(1u8, 10), (2, 1000)] {
            let session = NewSession {
                token_hash: [byte; 32],
                user_id: ann.id,
                created_at: at(0),
                expires_at: at(expires),
            };
            db.store.insert_session(&session).await.unwrap();
        }
        let case = new_case("app", "tow", at(0));
        let mut old = claim("app", "old", "b", case.id);
        old.created_at = at(0);
        db.store
            .create_case(&case, &created_event(at(0)), Some(&old))
            .await
            .unwrap();
        let purged = db.store.purge_expired(at(100), at(50)).await.unwrap();
        assert_eq!(purged, 2);
        assert!(
            db.store
                .session_user(&[2; 32], at(100))
                .await
                .unwrap()
                .is_some()
        );
        // The case itself stays.
        assert!(db.store.get_case(case.id).await.unwrap().is_some());
    }
);

backend_test!(cases_are_counted_by_status, |db| async move {
    let a = create(&db, &new_case("app", "tow", at(0))).await;
    create(&db, &new_case("app", "tow", at(1))).await;
    db.store
        .transition_case(a.id, &transition(CaseStatus::Cancelled, 2))
        .await
        .unwrap();
    let counts = db.store.count_cases_by_status().await.unwrap();
    assert_eq!(
        counts,
        vec![(CaseStatus::Cancelled, 1), (CaseStatus::New, 1)]
    );
});

backend_test!(the_store_answers_a_ping, |db| async move {
    db.store.ping().await.unwrap();
    assert!(["sqlite", "postgres"].contains(&db.store.backend()));
});

#[tokio::test]
async fn a_sqlite_file_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let case = new_case("app", "tow", at(0));
    {
        let store = storage::SqliteStore::connect(&storage::SqliteOptions::new(url.clone()))
            .await
            .unwrap();
        let store: Arc<dyn domain::ports::Store> = Arc::new(store);
        store
            .create_case(&case, &created_event(at(0)), None)
            .await
            .unwrap();
    }
    let store = storage::SqliteStore::connect(&storage::SqliteOptions::new(url))
        .await
        .unwrap();
    use domain::ports::CaseStore;
    assert_eq!(store.get_case(case.id).await.unwrap().unwrap().id, case.id);
}
