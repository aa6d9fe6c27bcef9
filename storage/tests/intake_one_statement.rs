//! PostgreSQL's one-statement intake writes what the transaction writes.
//!
//! On PostgreSQL `create_triaged_case` writes a dispatched intake (the case, its first
//! offer, its events, its idempotency key) with one statement of its own,
//! `PgStore::create_dispatched_case_in_one_statement`; every other path, and SQLite, use the
//! transaction of `dispatch_new_in_tx` (`create_triaged_case_in_transaction`). Here both run
//! on PostgreSQL from the same input and the same starting rows, each in its own schema,
//! and must return the same answer and leave every table the same, row for row.
//!
//! The tests live in `mod postgres`, so `cargo test -- --skip postgres` leaves them out.

mod common;

mod postgres {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use domain::ports::{
        CreateCaseOutcome, IdempotencyClaim, NewOffer, StoreError, TriageWrite, TriagedCase,
    };
    use domain::{Actor, CaseId, CaseInput, EventKind, NewCase, NewEvent, VehicleId, VehicleState};
    use storage::testing::{Backend, TestDatabase, TestDatabaseHandle};
    use storage::{PgStore, SqliteStore};

    use super::common::*;

    /// Tables in an order that copies referenced rows before the rows referring to them.
    const TABLES_IN_COPY_ORDER: &[&str] = &[
        "providers",
        "users",
        "sessions",
        "cases",
        "case_events",
        "idempotency_keys",
        "vehicles",
        "vehicle_devices",
        "vehicle_positions",
        "offers",
        "alerts",
        "case_fixes",
        "case_tracking",
        "webhook_deliveries",
        "webhook_attempts",
        "webhook_cursor",
        "diagnosis_tickets",
        "triage_rules",
        "phone_bindings",
    ];

    /// Two schemas with the same rows: `one` writes intakes in one statement, `tx` through
    /// the transaction.
    struct Twins {
        one: TestDatabaseHandle,
        tx: TestDatabaseHandle,
    }

    async fn database() -> TestDatabaseHandle {
        TestDatabaseHandle(Arc::new(TestDatabase::create(Backend::Postgres).await))
    }

    fn pg(db: &TestDatabaseHandle) -> &PgStore {
        db.postgres.as_ref().expect("a PostgreSQL test database")
    }

    fn schema(db: &TestDatabaseHandle) -> &str {
        db.schema.as_deref().expect("a PostgreSQL schema")
    }

    /// Every table of the schema (but sqlx's own), each as its rows in JSON, sorted.
    async fn dump(db: &TestDatabaseHandle) -> BTreeMap<String, Vec<String>> {
        let pool = pg(db).raw_pool();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 \
             AND tablename <> '_sqlx_migrations' ORDER BY tablename",
        )
        .bind(schema(db))
        .fetch_all(pool)
        .await
        .unwrap();
        let mut dump = BTreeMap::new();
        for (table,) in tables {
            let sql = format!("SELECT to_jsonb(t)::text FROM {table} t");
            let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .unwrap();
            rows.sort();
            dump.insert(table, rows);
        }
        dump
    }

    /// The state of every sequence of the schema: the next event id is part of what an
    /// intake leaves behind.
    async fn sequences(db: &TestDatabaseHandle) -> BTreeMap<String, Option<i64>> {
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT sequencename::text, last_value FROM pg_sequences WHERE schemaname = $1",
        )
        .bind(schema(db))
        .fetch_all(pg(db).raw_pool())
        .await
        .unwrap();
        rows.into_iter().collect()
    }

    impl Twins {
        /// Runs `setup` on a fresh schema through the store and copies its rows, and the
        /// state of its sequences, into a second fresh schema.
        async fn new<F, Fut, T>(setup: F) -> (Twins, T)
        where
            F: FnOnce(TestDatabaseHandle) -> Fut,
            Fut: std::future::Future<Output = T>,
        {
            let (one, tx) = (database().await, database().await);
            let made = setup(one.clone()).await;
            let (from, to) = (schema(&one), schema(&tx));
            let pool = pg(&tx).raw_pool();
            for table in TABLES_IN_COPY_ORDER {
                // A row the migrations wrote is in both already.
                let sql = format!(
                    "INSERT INTO {to}.{table} OVERRIDING SYSTEM VALUE SELECT * FROM {from}.{table} \
                     WHERE NOT EXISTS (SELECT 1 FROM {to}.{table})"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .unwrap();
            }
            for (sequence, last_value) in sequences(&one).await {
                if let Some(last_value) = last_value {
                    sqlx::query("SELECT setval($1::regclass, $2)")
                        .bind(format!("{to}.{sequence}"))
                        .bind(last_value)
                        .execute(pool)
                        .await
                        .unwrap();
                }
            }
            let twins = Twins { one, tx };
            twins.assert_same_rows("after the setup was copied").await;
            (twins, made)
        }

        async fn assert_same_rows(&self, when: &str) {
            let (one, tx) = (dump(&self.one).await, dump(&self.tx).await);
            assert_eq!(
                one.keys().collect::<Vec<_>>(),
                tx.keys().collect::<Vec<_>>(),
                "tables {when}"
            );
            for (table, rows) in &one {
                assert_eq!(
                    rows, &tx[table],
                    "`{table}` {when}: one statement (left) and transaction (right) differ"
                );
            }
            assert_eq!(
                sequences(&self.one).await,
                sequences(&self.tx).await,
                "sequences {when}"
            );
        }

        /// The same intake on both paths: they must answer alike and write alike.
        async fn intake(
            &self,
            case: &domain::Case,
            claim: Option<&IdempotencyClaim>,
            triage: &TriageWrite,
        ) -> Result<(CreateCaseOutcome, Option<TriagedCase>), StoreError> {
            let TriageWrite::Dispatch {
                event,
                reason,
                offers,
            } = triage
            else {
                panic!("a dispatched intake");
            };
            let created = created();
            let one = pg(&self.one)
                .create_dispatched_case_in_one_statement(
                    case, &created, claim, event, reason, offers,
                )
                .await;
            let tx = pg(&self.tx)
                .create_triaged_case_in_transaction(case, &created, claim, triage)
                .await;
            assert_eq!(
                format!("{one:#?}"),
                format!("{tx:#?}"),
                "the answers of one statement (left) and the transaction (right)"
            );
            self.assert_same_rows("after the intake").await;
            one
        }

        async fn cleanup(self) {
            for db in [self.one, self.tx] {
                if let Ok(db) = Arc::try_unwrap(db.0) {
                    db.cleanup().await;
                }
            }
        }
    }

    fn created() -> NewEvent {
        NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}))
    }

    fn triaged(seconds: i64) -> NewEvent {
        NewEvent::new(
            EventKind::Triaged,
            Actor::System,
            at(seconds),
            serde_json::json!({"outcome": "needs_vehicle", "rule_id": "battery_flat"}),
        )
    }

    /// A new case, with every optional column filled so that each bind shows.
    fn new_case() -> domain::Case {
        let input: CaseInput = serde_json::from_value(serde_json::json!({
            "channel": "app",
            "customer": {"name": "李雷", "phone": "+8613800138000", "member_id": "P-001",
                         "plate": "沪B67890", "vehicle_model": "BYD Han", "powertrain": "ev"},
            "location": {"lat": 31.2304, "lon": 121.4737, "accuracy_m": 12.5,
                         "address": "人民广场", "road_kind": "urban"},
            "fault": {"category": "battery", "symptoms": ["no_crank"], "description": "clicks, no start"},
            "service": "jump_start"
        }))
        .unwrap();
        let mut case = NewCase::parse(input).unwrap().open(CaseId::new_v7(), at(0));
        case.promised_arrival = Some(at(1800));
        case
    }

    fn dispatch(offers: Vec<(NewOffer, NewEvent)>) -> TriageWrite {
        TriageWrite::Dispatch {
            event: triaged(1),
            reason: "needs_vehicle".into(),
            offers,
        }
    }

    /// Offers of `case` to `vehicles`, best first, each with its own ranking data.
    fn candidates(
        case: &domain::Case,
        provider: domain::ProviderId,
        vehicles: &[VehicleId],
    ) -> Vec<(NewOffer, NewEvent)> {
        vehicles
            .iter()
            .enumerate()
            .map(|(rank, vehicle)| {
                // Sent at 2 s, ranked at 1 s: every time bound differs from the others.
                let mut offer = new_offer(case.id, *vehicle, provider, 2);
                offer.attempt = 1;
                offer.eta_s = 600 + 60 * rank as u32;
                offer.distance_m = 3100.5 + 1000.0 * rank as f64;
                let ranking = NewEvent::new(
                    EventKind::CandidatesRanked,
                    Actor::System,
                    at(1),
                    serde_json::json!({"candidates": [vehicle], "rank": rank}),
                );
                (offer, ranking)
            })
            .collect()
    }

    fn key(name: &str) -> IdempotencyClaim {
        IdempotencyClaim {
            scope: "app".into(),
            key: name.into(),
            request_hash: [7; 32],
            response: serde_json::json!({"answer": name}),
            created_at: at(0),
        }
    }

    #[test]
    fn only_postgres_has_a_one_statement_intake() {
        const { assert!(PgStore::ONE_STATEMENT_INTAKE) };
        const { assert!(!SqliteStore::ONE_STATEMENT_INTAKE) };
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_candidate_still_available_gets_the_offer() {
        let (twins, (p, taken, free, spare)) = Twins::new(|db| async move {
            let p = provider(&db, "Pudong").await;
            let (taken, free, spare) = (
                vehicle(&db, p, "T-taken").await,
                vehicle(&db, p, "T-free").await,
                vehicle(&db, p, "T-spare").await,
            );
            // Another case holds the best vehicle already.
            let other = dispatching_case(&db).await;
            db.store
                .create_offer(&new_offer(other, taken, p, 0), &ranking(0))
                .await
                .unwrap();
            (p, taken, free, spare)
        })
        .await;
        let case = new_case();
        let written = twins
            .intake(
                &case,
                None,
                &dispatch(candidates(&case, p, &[taken, free, spare])),
            )
            .await
            .unwrap();
        match written {
            (CreateCaseOutcome::Created(_), Some(TriagedCase::Offered { offer, .. })) => {
                assert_eq!(offer.vehicle_id, free);
            }
            other => panic!("expected an offered case, got {other:?}"),
        }
        twins.cleanup().await;
    }

    /// A vehicle freed at `freed`, after the new case read its clock (1 s): the offer is
    /// sent then, with the whole 45 s answer window after it, and the `offer_sent` event
    /// says so in the same text on both paths.
    async fn an_offer_starts_when_its_vehicle_was_freed(freed: domain::Timestamp) {
        let (twins, (p, truck)) = Twins::new(|db| async move {
            let p = provider(&db, "Minhang").await;
            let truck = vehicle(&db, p, "T-late").await;
            let other = dispatching_case(&db).await;
            let earlier = db
                .store
                .create_offer(&new_offer(other, truck, p, 0), &ranking(0))
                .await
                .unwrap();
            db.store
                .decline_offer(earlier.id, p, domain::DeclineReason::TooFar, freed)
                .await
                .unwrap();
            (p, truck)
        })
        .await;
        let case = new_case();
        let written = twins
            .intake(&case, None, &dispatch(candidates(&case, p, &[truck])))
            .await
            .unwrap();
        match written {
            (_, Some(TriagedCase::Offered { offer, .. })) => {
                let window = chrono::Duration::seconds(45);
                assert_eq!((offer.sent_at, offer.expires_at), (freed, freed + window));
            }
            other => panic!("expected an offered case, got {other:?}"),
        }
        twins.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offer_starts_no_earlier_than_its_vehicle_was_freed() {
        an_offer_starts_when_its_vehicle_was_freed(at(10)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offer_starts_when_its_vehicle_was_freed_to_the_millisecond() {
        an_offer_starts_when_its_vehicle_was_freed(at(10) + chrono::Duration::milliseconds(250))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offer_starts_when_its_vehicle_was_freed_to_the_microsecond() {
        an_offer_starts_when_its_vehicle_was_freed(at(10) + chrono::Duration::microseconds(123))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_is_stored_and_its_replay_writes_nothing() {
        let (twins, (p, truck)) = Twins::new(|db| async move {
            let p = provider(&db, "Xuhui").await;
            (p, vehicle(&db, p, "T-1").await)
        })
        .await;
        let claim = key("k-first");
        let case = new_case();
        let written = twins
            .intake(
                &case,
                Some(&claim),
                &dispatch(candidates(&case, p, &[truck])),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                written,
                (
                    CreateCaseOutcome::Created(_),
                    Some(TriagedCase::Offered { .. })
                )
            ),
            "{written:?}"
        );
        // The same key again, for what would be another case: the first answer comes back.
        let again = new_case();
        let replayed = twins
            .intake(
                &again,
                Some(&claim),
                &dispatch(candidates(&again, p, &[truck])),
            )
            .await
            .unwrap();
        match replayed {
            (CreateCaseOutcome::Replayed { case_id, .. }, None) => assert_eq!(case_id, case.id),
            other => panic!("expected a replay, got {other:?}"),
        }
        twins.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_case_no_candidate_can_take_stays_dispatching() {
        let (twins, (p, taken, offline)) = Twins::new(|db| async move {
            let p = provider(&db, "Jing'an").await;
            let taken = vehicle(&db, p, "T-taken").await;
            let other = dispatching_case(&db).await;
            db.store
                .create_offer(&new_offer(other, taken, p, 0), &ranking(0))
                .await
                .unwrap();
            let offline = db
                .store
                .register_vehicle(
                    p,
                    "T-off",
                    &registration(VehicleState::Offline, vec![]),
                    at(0),
                )
                .await
                .unwrap()
                .vehicle
                .id;
            (p, taken, offline)
        })
        .await;
        // Candidates, none available, with a key.
        let case = new_case();
        let written = twins
            .intake(
                &case,
                Some(&key("k-none")),
                &dispatch(candidates(&case, p, &[taken, offline])),
            )
            .await
            .unwrap();
        assert!(
            matches!(
                written,
                (
                    CreateCaseOutcome::Created(_),
                    Some(TriagedCase::Dispatching(_))
                )
            ),
            "{written:?}"
        );
        // No candidates at all, without a key.
        let bare = new_case();
        let written = twins
            .intake(&bare, None, &dispatch(Vec::new()))
            .await
            .unwrap();
        assert!(
            matches!(written, (_, Some(TriagedCase::Dispatching(_)))),
            "{written:?}"
        );
        twins.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_offer_for_another_case_is_refused_by_both() {
        let (twins, (p, truck)) = Twins::new(|db| async move {
            let p = provider(&db, "Putuo").await;
            (p, vehicle(&db, p, "T-1").await)
        })
        .await;
        let (case, elsewhere) = (new_case(), new_case());
        let refused = twins
            .intake(
                &case,
                Some(&key("k-wrong")),
                &dispatch(candidates(&elsewhere, p, &[truck])),
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        twins.cleanup().await;
    }
}
