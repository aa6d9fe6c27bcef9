//! The phone-resolution report behind `GET /v1/reports/diagnosis?from=…&to=…`: how many
//! cases the experts solved, how fast they picked them up, how long the calls took, how
//! much waiting for a truck was saved, and how often they had to escalate — overall and by
//! fault category.
//!
//! The server selects the closed cases of the period and hands them over as plain
//! [`ReportCase`] values; [`DiagnosisReport::compute`] does the arithmetic.
//!
//! Definitions (every ratio is `None` when its denominator is zero):
//!
//! | figure | definition |
//! |---|---|
//! | `share_solved_by_phone` | solved ÷ all cases (the insurer's "6.4 % solved by phone") |
//! | `escalation_rate` | escalated ÷ (solved + escalated): of the calls an expert finished, how many needed a truck after all |
//! | `fallback_rate` | timed out ÷ queued: how often no expert was free in time |
//! | `time_to_pickup_s` | first claim − queued, over every ticket an expert picked up |
//! | `handling_time_s` | closed − first claim, over solved and escalated tickets |
//! | `saved_waiting_s` | Σ expected truck ETA (recorded at triage) over solved cases: the wait for a truck the driver was spared |
//! | `net_saved_waiting_s` | Σ (expected truck ETA − (closed − queued)) over the same cases: the saving after the time spent waiting for and talking to the expert |
//!
//! Medians and 90th percentiles interpolate linearly between the closest ranks, as
//! PostgreSQL's `percentile_cont` does, so a database-side report gives the same numbers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{CaseId, FaultCategory};
use serde::{Deserialize, Serialize};

use crate::queue::{Ticket, TicketOutcome};

/// One closed case of the report period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportCase {
    /// The case.
    pub case_id: CaseId,
    /// Its fault category.
    pub category: FaultCategory,
    /// Its diagnosis ticket; `None` when the case was dispatched without one.
    pub diagnosis: Option<DiagnosisRecord>,
}

/// What the report needs of a closed diagnosis ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosisRecord {
    /// How it ended.
    pub outcome: TicketOutcome,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When an expert first claimed it.
    pub first_claimed_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub closed_at: DateTime<Utc>,
    /// The truck ETA estimated at triage, seconds: what the driver would have waited.
    pub expected_truck_eta_s: Option<u32>,
}

impl DiagnosisRecord {
    /// The record of a closed ticket; `None` while it is open.
    pub fn from_ticket(ticket: &Ticket, expected_truck_eta_s: Option<u32>) -> Option<Self> {
        Some(Self {
            outcome: ticket.outcome?,
            queued_at: ticket.queued_at,
            first_claimed_at: ticket.first_claimed_at,
            closed_at: ticket.closed_at?,
            expected_truck_eta_s,
        })
    }
}

/// Summary of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurationStats {
    /// How many durations.
    pub count: u64,
    /// Median, seconds.
    pub median_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
    /// Mean, seconds.
    pub mean_s: f64,
    /// Longest, seconds.
    pub max_s: f64,
}

impl DurationStats {
    /// The statistics of `durations_s`; `None` when empty.
    ///
    /// ```
    /// use diagnosis_core::DurationStats;
    /// let stats = DurationStats::of(vec![60.0, 120.0, 180.0, 240.0]).unwrap();
    /// assert_eq!(stats.median_s, 150.0);
    /// assert!((stats.p90_s - 222.0).abs() < 1e-9);
    /// assert!(DurationStats::of(vec![]).is_none());
    /// ```
    pub fn of(mut durations_s: Vec<f64>) -> Option<Self> {
        durations_s.retain(|duration| duration.is_finite());
        if durations_s.is_empty() {
            return None;
        }
        durations_s.sort_by(f64::total_cmp);
        let count = durations_s.len();
        let sum: f64 = durations_s.iter().sum();
        Some(Self {
            count: count as u64,
            median_s: percentile_cont(&durations_s, 0.5),
            p90_s: percentile_cont(&durations_s, 0.9),
            mean_s: sum / count as f64,
            max_s: durations_s[count - 1],
        })
    }
}

/// Linear interpolation between closest ranks over sorted, non-empty values.
fn percentile_cont(sorted: &[f64], fraction: f64) -> f64 {
    let rank = fraction * (sorted.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
}

/// The figures for one set of cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportFigures {
    /// All closed cases.
    pub cases: u64,
    /// Cases that went to the phone-expert queue.
    pub queued_for_phone: u64,
    /// Solved on the phone.
    pub solved_by_phone: u64,
    /// Escalated by the expert.
    pub escalated: u64,
    /// Dispatched because no expert picked them up in time.
    pub timed_out: u64,
    /// Ended otherwise while queued (cancelled).
    pub abandoned: u64,
    /// Solved ÷ cases.
    pub share_solved_by_phone: Option<f64>,
    /// Escalated ÷ (solved + escalated).
    pub escalation_rate: Option<f64>,
    /// Timed out ÷ queued.
    pub fallback_rate: Option<f64>,
    /// First claim − queued.
    pub time_to_pickup_s: Option<DurationStats>,
    /// Closed − first claim, for solved and escalated tickets.
    pub handling_time_s: Option<DurationStats>,
    /// Σ expected truck ETA over solved cases, seconds.
    pub saved_waiting_s: u64,
    /// Σ (expected truck ETA − time from queue to solution) over solved cases, seconds.
    pub net_saved_waiting_s: i64,
}

impl ReportFigures {
    fn compute<'a>(cases: impl Iterator<Item = &'a ReportCase>) -> Self {
        let mut figures = Self {
            cases: 0,
            queued_for_phone: 0,
            solved_by_phone: 0,
            escalated: 0,
            timed_out: 0,
            abandoned: 0,
            share_solved_by_phone: None,
            escalation_rate: None,
            fallback_rate: None,
            time_to_pickup_s: None,
            handling_time_s: None,
            saved_waiting_s: 0,
            net_saved_waiting_s: 0,
        };
        let mut pickups_s = Vec::new();
        let mut handling_s = Vec::new();
        for case in cases {
            figures.cases += 1;
            let Some(record) = &case.diagnosis else {
                continue;
            };
            figures.queued_for_phone += 1;
            match record.outcome {
                TicketOutcome::Solved => figures.solved_by_phone += 1,
                TicketOutcome::Escalated => figures.escalated += 1,
                TicketOutcome::TimedOut => figures.timed_out += 1,
                TicketOutcome::Abandoned => figures.abandoned += 1,
            }
            if let Some(first_claimed_at) = record.first_claimed_at {
                pickups_s.push(seconds_between(record.queued_at, first_claimed_at));
                if matches!(
                    record.outcome,
                    TicketOutcome::Solved | TicketOutcome::Escalated
                ) {
                    handling_s.push(seconds_between(first_claimed_at, record.closed_at));
                }
            }
            if record.outcome == TicketOutcome::Solved
                && let Some(eta_s) = record.expected_truck_eta_s
            {
                figures.saved_waiting_s += u64::from(eta_s);
                let spent_s = (record.closed_at - record.queued_at).num_seconds().max(0);
                figures.net_saved_waiting_s += i64::from(eta_s) - spent_s;
            }
        }
        figures.share_solved_by_phone = ratio(figures.solved_by_phone, figures.cases);
        figures.escalation_rate = ratio(
            figures.escalated,
            figures.solved_by_phone + figures.escalated,
        );
        figures.fallback_rate = ratio(figures.timed_out, figures.queued_for_phone);
        figures.time_to_pickup_s = DurationStats::of(pickups_s);
        figures.handling_time_s = DurationStats::of(handling_s);
        figures
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Non-negative seconds from `from` to `to` (clock skew never yields a negative duration).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0) as f64) / 1_000.0
}

/// The report: overall and by fault category (categories without cases are left out).
///
/// ```
/// use chrono::{Duration, Utc};
/// use domain::{CaseId, FaultCategory};
/// use diagnosis_core::{DiagnosisRecord, DiagnosisReport, ReportCase, TicketOutcome};
/// let queued_at: chrono::DateTime<Utc> = "2026-05-04T02:00:00Z".parse().unwrap();
/// let solved = ReportCase {
///     case_id: CaseId::new_v7(),
///     category: FaultCategory::KeyFob,
///     diagnosis: Some(DiagnosisRecord {
///         outcome: TicketOutcome::Solved,
///         queued_at,
///         first_claimed_at: Some(queued_at + Duration::seconds(90)),
///         closed_at: queued_at + Duration::seconds(690),
///         expected_truck_eta_s: Some(2_700),
///     }),
/// };
/// let towed = ReportCase { case_id: CaseId::new_v7(), category: FaultCategory::Engine, diagnosis: None };
/// let report = DiagnosisReport::compute(&[solved, towed]);
/// assert_eq!(report.overall.share_solved_by_phone, Some(0.5));
/// assert_eq!(report.overall.saved_waiting_s, 2_700);
/// assert_eq!(report.overall.net_saved_waiting_s, 2_010);
/// assert_eq!(report.by_category[&FaultCategory::KeyFob].solved_by_phone, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosisReport {
    /// Every case.
    pub overall: ReportFigures,
    /// Per fault category.
    pub by_category: BTreeMap<FaultCategory, ReportFigures>,
}

impl DiagnosisReport {
    /// Computes the report over `cases`.
    pub fn compute(cases: &[ReportCase]) -> Self {
        let mut categories: Vec<FaultCategory> = cases.iter().map(|case| case.category).collect();
        categories.sort_unstable();
        categories.dedup();
        let by_category = categories
            .into_iter()
            .map(|category| {
                let figures =
                    ReportFigures::compute(cases.iter().filter(|case| case.category == category));
                (category, figures)
            })
            .collect();
        Self {
            overall: ReportFigures::compute(cases.iter()),
            by_category,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at_s(seconds: i64) -> DateTime<Utc> {
        let t0: DateTime<Utc> = "2026-05-04T02:00:00Z".parse().expect("valid time");
        t0 + Duration::seconds(seconds)
    }

    fn dispatched(category: FaultCategory) -> ReportCase {
        ReportCase {
            case_id: CaseId::new_v7(),
            category,
            diagnosis: None,
        }
    }

    fn diagnosed(
        category: FaultCategory,
        outcome: TicketOutcome,
        pickup_s: Option<i64>,
        closed_s: i64,
        eta_s: Option<u32>,
    ) -> ReportCase {
        ReportCase {
            case_id: CaseId::new_v7(),
            category,
            diagnosis: Some(DiagnosisRecord {
                outcome,
                queued_at: at_s(0),
                first_claimed_at: pickup_s.map(at_s),
                closed_at: at_s(closed_s),
                expected_truck_eta_s: eta_s,
            }),
        }
    }

    #[test]
    fn an_empty_period_has_zero_counts_and_no_ratios() {
        let report = DiagnosisReport::compute(&[]);
        assert_eq!(report.overall.cases, 0);
        assert_eq!(report.overall.share_solved_by_phone, None);
        assert_eq!(report.overall.escalation_rate, None);
        assert_eq!(report.overall.time_to_pickup_s, None);
        assert!(report.by_category.is_empty());
    }

    #[test]
    fn shares_rates_times_and_savings_are_computed_overall_and_by_category() {
        use FaultCategory::{Engine, GearLock, KeyFob};
        use TicketOutcome::{Abandoned, Escalated, Solved, TimedOut};
        let cases = [
            diagnosed(KeyFob, Solved, Some(60), 660, Some(3_000)),
            diagnosed(KeyFob, Solved, Some(120), 420, Some(1_200)),
            diagnosed(KeyFob, Escalated, Some(180), 780, Some(2_400)),
            diagnosed(GearLock, Solved, Some(240), 540, None),
            diagnosed(GearLock, TimedOut, None, 300, Some(1_800)),
            diagnosed(GearLock, Abandoned, None, 100, None),
            dispatched(Engine),
            dispatched(Engine),
        ];
        let report = DiagnosisReport::compute(&cases);
        let overall = &report.overall;
        assert_eq!(overall.cases, 8);
        assert_eq!(overall.queued_for_phone, 6);
        assert_eq!(
            (
                overall.solved_by_phone,
                overall.escalated,
                overall.timed_out,
                overall.abandoned
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(overall.share_solved_by_phone, Some(3.0 / 8.0));
        assert_eq!(overall.escalation_rate, Some(0.25));
        assert_eq!(overall.fallback_rate, Some(1.0 / 6.0));

        let pickup = overall.time_to_pickup_s.expect("four pickups");
        assert_eq!(pickup.count, 4);
        assert_eq!(pickup.median_s, 150.0);
        assert!((pickup.p90_s - 222.0).abs() < 1e-9);
        assert_eq!(pickup.max_s, 240.0);

        // Handling: 600, 300, 600, 300 s.
        let handling = overall.handling_time_s.expect("four handled");
        assert_eq!(
            (handling.count, handling.median_s, handling.mean_s),
            (4, 450.0, 450.0)
        );

        // Saved: solved cases with an ETA only (the escalated and timed-out ones saved nothing).
        assert_eq!(overall.saved_waiting_s, 4_200);
        assert_eq!(overall.net_saved_waiting_s, (3_000 - 660) + (1_200 - 420));

        let key_fob = &report.by_category[&KeyFob];
        assert_eq!((key_fob.cases, key_fob.solved_by_phone), (3, 2));
        assert_eq!(key_fob.escalation_rate, Some(1.0 / 3.0));
        let engine = &report.by_category[&Engine];
        assert_eq!((engine.cases, engine.queued_for_phone), (2, 0));
        assert_eq!(engine.share_solved_by_phone, Some(0.0));
        assert_eq!(engine.escalation_rate, None);
        assert_eq!(report.by_category.len(), 3);
    }

    #[test]
    fn a_phone_fix_slower_than_the_truck_shows_a_negative_net_saving() {
        let cases = [diagnosed(
            FaultCategory::WarningLight,
            TicketOutcome::Solved,
            Some(600),
            2_400,
            Some(1_200),
        )];
        let report = DiagnosisReport::compute(&cases);
        assert_eq!(report.overall.saved_waiting_s, 1_200);
        assert_eq!(report.overall.net_saved_waiting_s, -1_200);
    }

    #[test]
    fn a_single_duration_is_its_own_median_and_p90_and_clock_skew_never_goes_negative() {
        let stats = DurationStats::of(vec![42.0]).expect("one value");
        assert_eq!(
            (stats.median_s, stats.p90_s, stats.max_s),
            (42.0, 42.0, 42.0)
        );
        let skewed = [diagnosed(
            FaultCategory::KeyFob,
            TicketOutcome::Solved,
            Some(-30),
            100,
            None,
        )];
        let pickup = DiagnosisReport::compute(&skewed)
            .overall
            .time_to_pickup_s
            .expect("one pickup");
        assert_eq!(pickup.median_s, 0.0);
    }

    #[test]
    fn the_report_serializes_with_categories_as_keys() {
        let cases = [diagnosed(
            FaultCategory::KeyFob,
            TicketOutcome::Solved,
            Some(60),
            660,
            Some(3_000),
        )];
        let json = serde_json::to_value(DiagnosisReport::compute(&cases)).expect("serializes");
        assert_eq!(json["overall"]["solved_by_phone"], 1);
        assert_eq!(json["by_category"]["key_fob"]["share_solved_by_phone"], 1.0);
        assert_eq!(json["overall"]["time_to_pickup_s"]["median_s"], 60.0);
    }

    #[test]
    fn a_record_is_built_only_from_a_closed_ticket() {
        use crate::queue::{QueuePolicy, Ticket};
        use domain::{TicketId, UserId};
        let skill = crate::rules::Skill::parse("key_fob").expect("valid skill");
        let mut ticket = Ticket::new(TicketId::new_v7(), CaseId::new_v7(), skill, 0, at_s(0));
        assert!(DiagnosisRecord::from_ticket(&ticket, Some(1_000)).is_none());
        let expert = UserId::new_v7();
        ticket
            .claim(expert, &["key_fob"], &QueuePolicy::default(), at_s(30))
            .expect("claimable");
        ticket.solve(expert, at_s(400)).expect("holder");
        let record = DiagnosisRecord::from_ticket(&ticket, Some(1_000)).expect("closed");
        assert_eq!(record.first_claimed_at, Some(at_s(30)));
        assert_eq!(record.closed_at, at_s(400));
    }
}
