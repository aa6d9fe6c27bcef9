//! Every store call is a `debug` span named after the call, carrying the backend and the ids it is about
//! and never a phone number (`#[tracing::instrument]` on the trait methods, inside their
//! `#[async_trait]` impls).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use domain::ports::CreateCaseOutcome;
use domain::{Actor, CaseId, CaseInput, EventKind, NewCase, NewEvent};
use storage::backend_test;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

mod common;
use common::*;

/// A span as it was opened.
#[derive(Debug, Clone)]
struct Opened {
    name: &'static str,
    target: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Keeps every span any test of this binary opens.
struct Recorder;

fn opened() -> &'static Mutex<Vec<Opened>> {
    static OPENED: OnceLock<Mutex<Vec<Opened>>> = OnceLock::new();
    OPENED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Recorder);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        Mutex::new(Vec::new())
    })
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        opened().lock().unwrap().push(Opened {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            level: *attrs.metadata().level(),
            fields,
        });
    }
}

/// The spans named `name` that carry `field = value`.
fn spans(name: &str, field: &str, value: impl ToString) -> Vec<Opened> {
    let value = value.to_string();
    opened()
        .lock()
        .unwrap()
        .iter()
        .filter(|span| span.name == name && span.fields.get(field) == Some(&value))
        .cloned()
        .collect()
}

const PHONE: &str = "+8613900000001";

backend_test!(
    store_calls_are_debug_spans_with_their_ids,
    |db| async move {
        opened();
        let p = provider(&db, "Spans").await;
        let truck = vehicle(&db, p, "T-span").await;
        let input: CaseInput = serde_json::from_value(serde_json::json!({
            "channel": "app",
            "customer": {"phone": PHONE},
            "location": {"lat": 31.2304, "lon": 121.4737, "road_kind": "urban"},
            "fault": {"category": "battery"},
            "service": "jump_start"
        }))
        .unwrap();
        let case = NewCase::parse(input).unwrap().open(CaseId::new_v7(), at(0));
        let created = NewEvent::new(EventKind::Created, Actor::App, at(0), serde_json::json!({}));
        let CreateCaseOutcome::Created(case) =
            db.store.create_case(&case, &created, None).await.unwrap()
        else {
            panic!("created");
        };
        db.store.get_vehicle(truck).await.unwrap();

        let backend = db.store.backend();
        let created = spans("create_case", "case_id", case.id);
        assert_eq!(created.len(), 1, "{created:?}");
        let span = &created[0];
        assert_eq!(span.level, tracing::Level::DEBUG);
        assert_eq!(
            span.fields.get("backend").map(String::as_str),
            Some(backend),
            "the span names the backend: {span:?}"
        );
        assert!(
            span.target.starts_with("storage::"),
            "`RUST_LOG=storage=debug` turns the spans on: {span:?}"
        );
        let looked_up = spans("get_vehicle", "vehicle_id", truck);
        assert_eq!(looked_up.len(), 1, "{looked_up:?}");
        let registered = spans("register_vehicle", "provider_id", p);
        assert_eq!(registered.len(), 1, "{registered:?}");
        assert_eq!(registered[0].fields["external_id"], "T-span");

        let recorded = opened().lock().unwrap().clone();
        for span in recorded {
            for (field, value) in &span.fields {
                assert!(
                    !value.contains(PHONE),
                    "span `{}` records a phone number in `{field}`",
                    span.name
                );
            }
        }
    }
);
