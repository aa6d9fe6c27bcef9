//! The guarantees checked after every run, on what the server recorded (read back through
//! the agent API). Pure: the histories go in, the verdicts come out.
//!
//! - **no double booking**: per vehicle, the intervals during which it held an offer or a
//!   job never overlap. A pending offer holds the vehicle from `sent_at` on; a declined,
//!   expired or withdrawn one until `answered_at`; an accepted one until `released_at` (or
//!   still). At most one accepted offer per case.
//! - **every acknowledged request exists exactly once**: each `201` the clients received
//!   names a case that is listed once, and the request's marker is on exactly that case
//!   (a retried request that created a second case would show up here).
//! - **every case is in a recorded state**: its status is one of the status machine's, its
//!   timeline starts with `created` and has no gaps, and the last status change in the
//!   timeline leads to the status the case shows. A case still `new` long after it was
//!   created was never picked up: that is lost work.
//! - **no offer without an expiry**: every offer expires strictly after it was sent.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::history::{CaseHistory, OfferRecord};

/// Statuses of the case status machine.
pub const STATUSES: &[&str] = &[
    "new",
    "diagnosing",
    "resolved_remotely",
    "dispatching",
    "assigned",
    "en_route",
    "on_scene",
    "in_service",
    "completed",
    "escalated",
    "cancelled",
];

/// Most violations listed per invariant (all are counted).
const MAX_LISTED: usize = 50;

/// A request the server acknowledged with 201.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledged {
    /// The `Idempotency-Key` it was sent with.
    pub idempotency_key: String,
    /// The case id in the response.
    pub case_id: String,
    /// The marker carried in the request body (`customer.member_id`).
    pub marker: String,
}

/// The verdict on one invariant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Short name.
    pub name: &'static str,
    /// What it guarantees.
    pub description: &'static str,
    /// How many things (cases, vehicles, requests, offers) were checked.
    pub checked: usize,
    /// How many violations were found.
    pub violation_count: usize,
    /// The first violations, each saying what is wrong where.
    pub violations: Vec<String>,
}

impl Verdict {
    pub(crate) fn new(name: &'static str, description: &'static str) -> Verdict {
        Verdict {
            name,
            description,
            checked: 0,
            violation_count: 0,
            violations: Vec::new(),
        }
    }

    pub(crate) fn violation(&mut self, message: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_LISTED {
            self.violations.push(message);
        }
    }

    /// Whether the invariant holds.
    pub fn holds(&self) -> bool {
        self.violation_count == 0
    }
}

/// What the checks look at.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// Every case of the run, with its timeline and offers.
    pub histories: &'a [CaseHistory],
    /// Every case id the listing returned (with repeats, if the listing repeated any).
    pub listed_ids: &'a [String],
    /// Every acknowledged request.
    pub acknowledged: &'a [Acknowledged],
    /// When the histories were read.
    pub checked_at: DateTime<Utc>,
    /// A case still `new` this long after its creation counts as never picked up.
    pub stuck_after: chrono::Duration,
}

/// Runs every check.
pub fn check(evidence: &Evidence<'_>) -> Vec<Verdict> {
    vec![
        no_double_booking(evidence.histories),
        acknowledged_exactly_once(evidence),
        recorded_states(evidence),
        offers_expire(evidence.histories),
    ]
}

/// A vehicle held by an offer or a job from `from` until `until` (`None`: still held).
#[derive(Debug, Clone, Copy)]
struct Hold<'a> {
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    offer: &'a str,
    case: &'a str,
}

/// Until when an offer holds its vehicle: `None` while it still does.
fn held_until(offer: &OfferRecord) -> Result<Option<DateTime<Utc>>, String> {
    match offer.state.as_str() {
        "pending" => Ok(None),
        "accepted" => Ok(offer.released_at),
        "declined" | "expired" | "withdrawn" => offer.answered_at.map(Some).ok_or_else(|| {
            format!(
                "offer {} is {} but has no answered_at",
                offer.id, offer.state
            )
        }),
        other => Err(format!("offer {} has an unknown state `{other}`", offer.id)),
    }
}

fn no_double_booking(histories: &[CaseHistory]) -> Verdict {
    let mut verdict = Verdict::new(
        "no_double_booking",
        "no vehicle ever held two offers or jobs at once; at most one accepted offer per case",
    );
    let mut by_vehicle: HashMap<&str, Vec<Hold<'_>>> = HashMap::new();
    for history in histories {
        let accepted = history
            .offers
            .iter()
            .filter(|offer| offer.state == "accepted")
            .count();
        if accepted > 1 {
            verdict.violation(format!(
                "case {} has {accepted} accepted offers",
                history.case.id
            ));
        }
        for offer in &history.offers {
            match held_until(offer) {
                Ok(until) => {
                    if until.is_some_and(|end| end < offer.sent_at) {
                        verdict.violation(format!(
                            "offer {} of case {} ends before it was sent",
                            offer.id, history.case.id
                        ));
                    }
                    by_vehicle.entry(&offer.vehicle_id).or_default().push(Hold {
                        from: offer.sent_at,
                        until,
                        offer: &offer.id,
                        case: &history.case.id,
                    });
                }
                Err(message) => verdict.violation(message),
            }
        }
    }
    verdict.checked = by_vehicle.len();
    for (vehicle, mut holds) in by_vehicle {
        holds.sort_by_key(|hold| hold.from);
        // The hold reaching furthest so far.
        let mut furthest: Option<Hold<'_>> = None;
        for hold in holds {
            if let Some(earlier) = &furthest
                && earlier.until.is_none_or(|until| hold.from < until)
            {
                verdict.violation(format!(
                    "vehicle {vehicle} was offered case {} (offer {}, sent {}) while still holding case {} (offer {}, held until {})",
                    hold.case,
                    hold.offer,
                    hold.from,
                    earlier.case,
                    earlier.offer,
                    earlier.until.map_or_else(|| "now".to_owned(), |until| until.to_string())
                ));
            }
            let reaches_further = match (&furthest, hold.until) {
                (None, _) => true,
                (Some(Hold { until: None, .. }), _) => false,
                (Some(_), None) => true,
                (
                    Some(Hold {
                        until: Some(current),
                        ..
                    }),
                    Some(until),
                ) => until > *current,
            };
            if reaches_further {
                furthest = Some(hold);
            }
        }
    }
    verdict
}

fn acknowledged_exactly_once(evidence: &Evidence<'_>) -> Verdict {
    let mut verdict = Verdict::new(
        "acknowledged_exactly_once",
        "every request acknowledged with 201 exists exactly once, and no request made two cases",
    );
    let mut listed: HashMap<&str, usize> = HashMap::new();
    for id in evidence.listed_ids {
        *listed.entry(id.as_str()).or_default() += 1;
    }
    let mut by_marker: HashMap<&str, Vec<&str>> = HashMap::new();
    for history in evidence.histories {
        if let Some(marker) = history.case.marker() {
            by_marker.entry(marker).or_default().push(&history.case.id);
        }
    }
    // Two different requests must not be answered with the same case.
    let mut keys_by_case: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ack in evidence.acknowledged {
        keys_by_case
            .entry(&ack.case_id)
            .or_default()
            .push(&ack.idempotency_key);
    }
    for (case, mut keys) in keys_by_case {
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > 1 {
            verdict.violation(format!(
                "case {case} was returned for {} different requests",
                keys.len()
            ));
        }
    }
    for ack in evidence.acknowledged {
        verdict.checked += 1;
        match listed.get(ack.case_id.as_str()).copied().unwrap_or(0) {
            0 => verdict.violation(format!(
                "case {} (request {}) was acknowledged but is not listed",
                ack.case_id, ack.idempotency_key
            )),
            1 => {}
            times => verdict.violation(format!("case {} is listed {times} times", ack.case_id)),
        }
        match by_marker.get(ack.marker.as_str()).map(Vec::as_slice) {
            Some([only]) if *only == ack.case_id => {}
            Some([only]) => verdict.violation(format!(
                "request {} was acknowledged as case {} but made case {only}",
                ack.idempotency_key, ack.case_id
            )),
            Some(cases) if cases.len() > 1 => verdict.violation(format!(
                "request {} made {} cases: {}",
                ack.idempotency_key,
                cases.len(),
                cases.join(", ")
            )),
            _ => {
                // Already reported as not listed when the case is missing altogether.
                if listed.contains_key(ack.case_id.as_str()) {
                    verdict.violation(format!(
                        "case {} does not carry its request's marker {}",
                        ack.case_id, ack.marker
                    ));
                }
            }
        }
    }
    verdict
}

fn recorded_states(evidence: &Evidence<'_>) -> Verdict {
    let mut verdict = Verdict::new(
        "recorded_state",
        "every case is in a status of the status machine that its gapless timeline leads to, and none is left unattended in `new`",
    );
    for history in evidence.histories {
        verdict.checked += 1;
        let case = &history.case;
        if !STATUSES.contains(&case.status.as_str()) {
            verdict.violation(format!(
                "case {} has an unknown status `{}`",
                case.id, case.status
            ));
        }
        match history.timeline.first() {
            Some(first) if first.kind == "created" => {}
            Some(first) => verdict.violation(format!(
                "the timeline of case {} starts with `{}`, not `created`",
                case.id, first.kind
            )),
            None => verdict.violation(format!("case {} has no timeline", case.id)),
        }
        let gapless = history
            .timeline
            .iter()
            .enumerate()
            .all(|(index, event)| event.seq == index as i64 + 1);
        if !gapless {
            verdict.violation(format!(
                "the timeline of case {} has gaps or repeats",
                case.id
            ));
        }
        match history.status_by_timeline() {
            Some(status) if status == case.status => {}
            recorded => verdict.violation(format!(
                "case {} is `{}` but its timeline leads to `{}`",
                case.id,
                case.status,
                recorded.unwrap_or("<no status>")
            )),
        }
        if case.status == "new" && evidence.checked_at - case.created_at > evidence.stuck_after {
            verdict.violation(format!(
                "case {} is still `new` {} s after it was created: never picked up",
                case.id,
                (evidence.checked_at - case.created_at).num_seconds()
            ));
        }
    }
    verdict
}

fn offers_expire(histories: &[CaseHistory]) -> Verdict {
    let mut verdict = Verdict::new(
        "offers_expire",
        "every offer expires strictly after it was sent",
    );
    for history in histories {
        for offer in &history.offers {
            verdict.checked += 1;
            if offer.expires_at <= offer.sent_at {
                verdict.violation(format!(
                    "offer {} of case {} expires at {} but was sent at {}",
                    offer.id, history.case.id, offer.expires_at, offer.sent_at
                ));
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::*;

    fn evidence_for(histories: &[CaseHistory], acknowledged: &[Acknowledged]) -> Vec<Verdict> {
        let listed: Vec<String> = histories.iter().map(|h| h.case.id.clone()).collect();
        check(&Evidence {
            histories,
            listed_ids: &listed,
            acknowledged,
            checked_at: at(60_000),
            stuck_after: chrono::Duration::seconds(30),
        })
    }

    fn verdict<'a>(verdicts: &'a [Verdict], name: &str) -> &'a Verdict {
        verdicts.iter().find(|v| v.name == name).unwrap()
    }

    fn ack(case: &str, marker: &str) -> Acknowledged {
        Acknowledged {
            idempotency_key: format!("key-{marker}"),
            case_id: case.to_owned(),
            marker: marker.to_owned(),
        }
    }

    #[test]
    fn a_clean_history_passes_every_check() {
        let histories = [assigned_case("c1", "m1"), assigned_case("c2", "m2")];
        let mut second = histories[1].clone();
        second.offers[0].vehicle_id = "v2".to_owned();
        let histories = vec![histories[0].clone(), second];
        let verdicts = evidence_for(&histories, &[ack("c1", "m1"), ack("c2", "m2")]);
        for verdict in &verdicts {
            assert!(verdict.holds(), "{verdict:?}");
            assert!(verdict.checked > 0, "{verdict:?}");
        }
    }

    #[test]
    fn two_offers_of_one_vehicle_that_overlap_are_a_double_booking() {
        let mut first = assigned_case("c1", "m1");
        first.offers = vec![offer("o1", "v1", "declined", 0, Some(5_000), None)];
        let mut second = assigned_case("c2", "m2");
        second.offers = vec![offer("o2", "v1", "accepted", 4_000, Some(6_000), None)];
        let verdicts = evidence_for(&[first, second], &[]);
        let verdict = verdict(&verdicts, "no_double_booking");
        assert_eq!(verdict.violation_count, 1, "{verdict:?}");
        assert!(verdict.violations[0].contains("vehicle v1"), "{verdict:?}");
        assert!(verdict.violations[0].contains("case c2"), "{verdict:?}");
    }

    #[test]
    fn an_offer_sent_the_moment_the_previous_one_was_answered_is_not_a_double_booking() {
        let mut first = assigned_case("c1", "m1");
        first.offers = vec![offer("o1", "v1", "expired", 0, Some(45_000), None)];
        let mut second = assigned_case("c2", "m2");
        second.offers = vec![offer(
            "o2",
            "v1",
            "accepted",
            45_000,
            Some(47_000),
            Some(90_000),
        )];
        let verdicts = evidence_for(&[first, second], &[]);
        assert!(verdict(&verdicts, "no_double_booking").holds());
    }

    #[test]
    fn a_job_still_open_blocks_every_later_offer_of_its_vehicle() {
        let mut first = assigned_case("c1", "m1");
        first.offers = vec![offer("o1", "v1", "accepted", 0, Some(1_000), None)];
        let mut second = assigned_case("c2", "m2");
        second.offers = vec![offer("o2", "v1", "declined", 600_000, Some(601_000), None)];
        let verdicts = evidence_for(&[first, second], &[]);
        let verdict = verdict(&verdicts, "no_double_booking");
        assert_eq!(verdict.violation_count, 1, "{verdict:?}");
        assert!(
            verdict.violations[0].contains("held until now"),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_long_job_is_remembered_past_a_short_offer_inside_it() {
        // v1: a job from 0 to 100 s; an offer at 10–20 s overlaps it, and so does one at
        // 50 s, although it does not overlap the short offer just before it.
        let mut first = assigned_case("c1", "m1");
        first.offers = vec![offer("o1", "v1", "accepted", 0, Some(1_000), Some(100_000))];
        let mut second = assigned_case("c2", "m2");
        second.offers = vec![offer("o2", "v1", "declined", 10_000, Some(20_000), None)];
        let mut third = assigned_case("c3", "m3");
        third.offers = vec![offer("o3", "v1", "declined", 50_000, Some(51_000), None)];
        let verdicts = evidence_for(&[first, second, third], &[]);
        assert_eq!(verdict(&verdicts, "no_double_booking").violation_count, 2);
    }

    #[test]
    fn two_accepted_offers_on_one_case_are_reported() {
        let mut history = assigned_case("c1", "m1");
        history
            .offers
            .push(offer("o2", "v2", "accepted", 10, Some(20), None));
        let verdicts = evidence_for(&[history], &[]);
        let verdict = verdict(&verdicts, "no_double_booking");
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.contains("2 accepted offers")),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_acknowledged_case_missing_from_the_listing_is_reported() {
        let histories = vec![assigned_case("c1", "m1")];
        let verdicts = evidence_for(&histories, &[ack("c1", "m1"), ack("c9", "m9")]);
        let verdict = verdict(&verdicts, "acknowledged_exactly_once");
        assert_eq!(verdict.violation_count, 1, "{verdict:?}");
        assert!(verdict.violations[0].contains("c9"), "{verdict:?}");
    }

    #[test]
    fn a_request_that_made_two_cases_is_reported() {
        // The retry of a request whose first answer was lost created a second case.
        let histories = vec![assigned_case("c1", "m1"), assigned_case("c2", "m1")];
        let mut histories = histories;
        histories[1].offers[0].vehicle_id = "v2".to_owned();
        let verdicts = evidence_for(&histories, &[ack("c1", "m1")]);
        let verdict = verdict(&verdicts, "acknowledged_exactly_once");
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.contains("made 2 cases")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_case_listed_twice_is_reported() {
        let histories = vec![assigned_case("c1", "m1")];
        let listed = vec!["c1".to_owned(), "c1".to_owned()];
        let verdicts = check(&Evidence {
            histories: &histories,
            listed_ids: &listed,
            acknowledged: &[ack("c1", "m1")],
            checked_at: at(1_000),
            stuck_after: chrono::Duration::seconds(30),
        });
        let verdict = verdict(&verdicts, "acknowledged_exactly_once");
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.contains("listed 2 times")),
            "{verdict:?}"
        );
    }

    #[test]
    fn one_case_returned_for_two_different_requests_is_reported() {
        let histories = vec![assigned_case("c1", "m1")];
        let mut other = ack("c1", "m2");
        other.idempotency_key = "another-key".to_owned();
        let verdicts = evidence_for(&histories, &[ack("c1", "m1"), other]);
        let verdict = verdict(&verdicts, "acknowledged_exactly_once");
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.contains("2 different requests")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_status_the_timeline_does_not_lead_to_is_reported() {
        let mut history = assigned_case("c1", "m1");
        history.case.status = "completed".to_owned();
        let verdicts = evidence_for(&[history], &[]);
        let verdict = verdict(&verdicts, "recorded_state");
        assert_eq!(verdict.violation_count, 1, "{verdict:?}");
        assert!(
            verdict.violations[0].contains("leads to `assigned`"),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_timeline_with_a_gap_is_reported() {
        let mut history = assigned_case("c1", "m1");
        history.timeline.remove(2);
        let verdicts = evidence_for(&[history], &[]);
        assert!(!verdict(&verdicts, "recorded_state").holds());
    }

    #[test]
    fn a_case_left_in_new_is_lost_work_but_a_fresh_one_is_not() {
        let mut history = assigned_case("c1", "m1");
        history.timeline.truncate(1);
        history.offers.clear();
        history.case.status = "new".to_owned();
        // Checked 60 s after creation, with 30 s allowed.
        let verdicts = evidence_for(std::slice::from_ref(&history), &[]);
        let verdict_late = verdict(&verdicts, "recorded_state");
        assert!(
            verdict_late
                .violations
                .iter()
                .any(|v| v.contains("never picked up")),
            "{verdict_late:?}"
        );
        history.case.created_at = at(50_000);
        history.timeline[0].at = at(50_000);
        let verdicts = evidence_for(&[history], &[]);
        assert!(verdict(&verdicts, "recorded_state").holds());
    }

    #[test]
    fn an_offer_expiring_when_it_is_sent_is_reported() {
        let mut history = assigned_case("c1", "m1");
        history.offers[0].expires_at = history.offers[0].sent_at;
        let verdicts = evidence_for(&[history], &[]);
        let verdict = verdict(&verdicts, "offers_expire");
        assert_eq!((verdict.checked, verdict.violation_count), (1, 1));
    }

    #[test]
    fn an_answered_offer_without_its_answer_time_is_reported() {
        let mut history = assigned_case("c1", "m1");
        history.offers[0] = offer("o1", "v1", "declined", 0, None, None);
        let verdicts = evidence_for(&[history], &[]);
        let verdict = verdict(&verdicts, "no_double_booking");
        assert!(
            verdict.violations[0].contains("no answered_at"),
            "{verdict:?}"
        );
    }
}
