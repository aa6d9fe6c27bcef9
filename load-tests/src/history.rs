//! What the server recorded about the cases of a run, as read back through the agent API:
//! the case, its timeline and its offers. Pure data and the timings derived from it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// A case as listed by `GET /v1/cases`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CaseRecord {
    /// Case id.
    pub id: String,
    /// Its status.
    pub status: String,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// The customer, whose member number carries the run's request marker.
    #[serde(default)]
    pub customer: CustomerRecord,
}

/// The part of the customer the checks use.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CustomerRecord {
    /// Member number: the request marker for cases of a load run.
    #[serde(default)]
    pub member_id: Option<String>,
}

impl CaseRecord {
    /// The request marker, if the case came from a load run.
    pub fn marker(&self) -> Option<&str> {
        self.customer.member_id.as_deref()
    }
}

/// One timeline event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventRecord {
    /// Position in the whole event log (the stream's event id).
    #[serde(default)]
    pub id: i64,
    /// Position in the case's timeline, from 1.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// What (`created`, `offer_sent`, `status_changed` …).
    pub kind: String,
    /// Details.
    #[serde(default)]
    pub data: Value,
}

/// One offer, as an agent sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OfferRecord {
    /// Offer id.
    pub id: String,
    /// The server's id of the vehicle.
    pub vehicle_id: String,
    /// `pending`, `accepted`, `declined`, `expired` or `withdrawn`.
    pub state: String,
    /// Sent.
    pub sent_at: DateTime<Utc>,
    /// Expires.
    pub expires_at: DateTime<Utc>,
    /// Answered (accepted, declined, expired, withdrawn).
    #[serde(default)]
    pub answered_at: Option<DateTime<Utc>>,
    /// The job ended (for an accepted offer).
    #[serde(default)]
    pub released_at: Option<DateTime<Utc>>,
}

/// Everything recorded about one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseHistory {
    /// The case.
    pub case: CaseRecord,
    /// Its timeline, in order.
    pub timeline: Vec<EventRecord>,
    /// Its offers.
    pub offers: Vec<OfferRecord>,
}

/// Timings of one case, from its own timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CaseTimings {
    /// When the `created` event was recorded.
    pub created_at: DateTime<Utc>,
    /// From `created` to the first `offer_sent`: the dispatch latency. A case that waited
    /// for a phone expert first counts from its change `diagnosing → dispatching`
    /// instead: the expert's queue is not dispatch.
    pub to_first_offer: Option<chrono::Duration>,
    /// From `created` to the assignment of a vehicle (an accepted offer, a manual
    /// assignment, or the change to `assigned`, whichever the timeline shows first): time to
    /// assignment.
    pub to_assignment: Option<chrono::Duration>,
}

impl CaseHistory {
    /// The timings of the case, or `None` when its timeline has no `created` event.
    pub fn timings(&self) -> Option<CaseTimings> {
        let created_at = self.first_event("created")?.at;
        let assigned = self.timeline.iter().find(|event| {
            matches!(event.kind.as_str(), "offer_accepted" | "vehicle_assigned")
                || (event.kind == "status_changed" && event.data["to"] == "assigned")
        });
        let is_status = |event: &EventRecord, to: &str| {
            event.kind == "status_changed" && event.data["to"] == to
        };
        let mut events = self.timeline.iter();
        let dispatch_started = if self
            .timeline
            .iter()
            .any(|event| is_status(event, "diagnosing"))
        {
            events
                .by_ref()
                .skip_while(|event| !is_status(event, "diagnosing"))
                .find(|event| is_status(event, "dispatching"))
                .map(|event| event.at)
        } else {
            Some(created_at)
        };
        let to_first_offer = dispatch_started.and_then(|started| {
            events
                .find(|event| event.kind == "offer_sent")
                .map(|event| event.at - started)
        });
        Some(CaseTimings {
            created_at,
            to_first_offer,
            to_assignment: assigned.map(|event| event.at - created_at),
        })
    }

    fn first_event(&self, kind: &str) -> Option<&EventRecord> {
        self.timeline.iter().find(|event| event.kind == kind)
    }

    /// The status the timeline says the case is in: the target of the last status change,
    /// or `new` when it never changed.
    pub fn status_by_timeline(&self) -> Option<&str> {
        match self
            .timeline
            .iter()
            .rev()
            .find(|event| event.kind == "status_changed")
        {
            Some(event) => event.data["to"].as_str(),
            None => Some("new"),
        }
    }
}

#[cfg(test)]
pub mod fixtures {
    //! Synthetic histories for the tests of the checks and the report.

    use super::*;

    /// 2026-11-22T08:00:00Z plus `ms` milliseconds.
    pub fn at(ms: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc)
            + chrono::Duration::milliseconds(ms)
    }

    /// An event.
    pub fn event(seq: i64, at_ms: i64, kind: &str, data: Value) -> EventRecord {
        EventRecord {
            id: 0,
            seq,
            at: at(at_ms),
            kind: kind.to_owned(),
            data,
        }
    }

    /// An offer of `vehicle` sent at `sent_ms`, in `state`, answered at `answered_ms`.
    pub fn offer(
        id: &str,
        vehicle: &str,
        state: &str,
        sent_ms: i64,
        answered_ms: Option<i64>,
        released_ms: Option<i64>,
    ) -> OfferRecord {
        OfferRecord {
            id: id.to_owned(),
            vehicle_id: vehicle.to_owned(),
            state: state.to_owned(),
            sent_at: at(sent_ms),
            expires_at: at(sent_ms + 45_000),
            answered_at: answered_ms.map(at),
            released_at: released_ms.map(at),
        }
    }

    /// A case that was created, dispatched, offered and assigned.
    pub fn assigned_case(id: &str, marker: &str) -> CaseHistory {
        CaseHistory {
            case: CaseRecord {
                id: id.to_owned(),
                status: "assigned".to_owned(),
                created_at: at(0),
                customer: CustomerRecord {
                    member_id: Some(marker.to_owned()),
                },
            },
            timeline: vec![
                event(1, 0, "created", Value::Null),
                event(
                    2,
                    1,
                    "status_changed",
                    serde_json::json!({"from": "new", "to": "dispatching"}),
                ),
                event(3, 3, "candidates_ranked", Value::Null),
                event(4, 4, "offer_sent", Value::Null),
                event(5, 4_000, "offer_accepted", Value::Null),
                event(6, 4_000, "vehicle_assigned", Value::Null),
                event(
                    7,
                    4_000,
                    "status_changed",
                    serde_json::json!({"from": "dispatching", "to": "assigned"}),
                ),
            ],
            offers: vec![offer("o1", "v1", "accepted", 4, Some(4_000), None)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn dispatch_latency_runs_from_the_created_event_to_the_first_offer() {
        let timings = assigned_case("c1", "m1").timings().unwrap();
        assert_eq!(
            timings.to_first_offer,
            Some(chrono::Duration::milliseconds(4))
        );
        assert_eq!(
            timings.to_assignment,
            Some(chrono::Duration::milliseconds(4_000))
        );
        assert_eq!(timings.created_at, at(0));
    }

    #[test]
    fn an_accepted_offer_counts_as_the_assignment_even_without_a_manual_assignment_event() {
        let mut history = assigned_case("c1", "m1");
        history
            .timeline
            .retain(|event| event.kind != "vehicle_assigned");
        history.timeline[4].at = at(3_000);
        let timings = history.timings().unwrap();
        assert_eq!(
            timings.to_assignment,
            Some(chrono::Duration::milliseconds(3_000))
        );
    }

    #[test]
    fn a_case_that_waited_for_an_expert_counts_its_dispatch_from_the_fallback() {
        let mut history = assigned_case("c1", "m1");
        history.timeline[1] = event(
            2,
            1,
            "status_changed",
            serde_json::json!({"from": "new", "to": "diagnosing"}),
        );
        history.timeline.insert(
            2,
            event(
                3,
                300_000,
                "status_changed",
                serde_json::json!({"from": "diagnosing", "to": "dispatching"}),
            ),
        );
        history.timeline[3].at = at(300_002);
        history.timeline[4].at = at(300_005);
        let timings = history.timings().unwrap();
        assert_eq!(
            timings.to_first_offer,
            Some(chrono::Duration::milliseconds(5))
        );
        // Still waiting for the expert: no dispatch latency yet.
        history.timeline.truncate(2);
        assert_eq!(history.timings().unwrap().to_first_offer, None);
    }

    #[test]
    fn a_case_never_offered_has_no_dispatch_latency() {
        let mut history = assigned_case("c1", "m1");
        history.timeline.truncate(2);
        let timings = history.timings().unwrap();
        assert_eq!(timings.to_first_offer, None);
        assert_eq!(timings.to_assignment, None);
    }

    #[test]
    fn the_status_by_timeline_is_the_target_of_the_last_change() {
        let mut history = assigned_case("c1", "m1");
        assert_eq!(history.status_by_timeline(), Some("assigned"));
        history.timeline.truncate(1);
        assert_eq!(history.status_by_timeline(), Some("new"));
    }

    #[test]
    fn api_records_parse_with_the_fields_the_checks_need() {
        let offer: OfferRecord = serde_json::from_value(serde_json::json!({
            "id": "o", "case_id": "c", "vehicle_id": "v", "provider_id": "p", "state": "declined",
            "attempt": 1, "eta_s": 432, "distance_m": 2000.0,
            "sent_at": "2026-11-22T08:00:00.000001Z", "expires_at": "2026-11-22T08:00:45Z",
            "answered_at": "2026-11-22T08:00:03Z", "decline_reason": "busy"
        }))
        .unwrap();
        assert_eq!(offer.state, "declined");
        assert_eq!(offer.released_at, None);
        let case: CaseRecord = serde_json::from_value(serde_json::json!({
            "id": "c", "status": "new", "created_at": "2026-11-22T08:00:00Z",
            "customer": {"phone": "+8613800138000", "member_id": "lt-1-0000001"}, "service": "tow"
        }))
        .unwrap();
        assert_eq!(case.marker(), Some("lt-1-0000001"));
    }
}
