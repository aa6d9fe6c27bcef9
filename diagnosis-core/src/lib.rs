//! Remote diagnosis: deciding whether a stranded driver can be helped over the phone, and
//! running the phone-expert queue — as pure logic, with no I/O and no clock of its own.
//!
//! The crate owns five things, one module each:
//!
//! - [`rules`]: the **triage rules** as data (TOML or JSON), validated with errors that name
//!   the line, column and field; [`TriageRules::defaults`] ships sensible defaults.
//! - [`safety`] and [`mod@triage`]: the **safety override** (highway, accident, injury, smoke or
//!   fire, a vulnerable customer, night on a rural road, a customer asking for a truck),
//!   evaluated before the rules, and [`triage()`], which combines both into a
//!   [`TriageDecision`] with machine-readable reasons for the case timeline. "Night" is real
//!   darkness at the place and time, from the sun's elevation ([`solar`]).
//! - [`queue`]: the **expert queue policy**: ordering (a documented sort key the SQL
//!   mirrors), skill matching, claim expiry and the fallback to dispatch after `max_wait`.
//! - [`phone_bridge`]: the **masked-call** port ([`PhoneBridge`]) and the pure number-pool
//!   allocator behind the built-in implementation.
//! - [`report`]: the **phone-resolution report** (share solved by phone, pickup and handling
//!   times, waiting saved, escalation rate), overall and by fault category.
//!
//! Time always comes in as an argument (`now`, `at`), so every rule runs on injected time.
//! The server (crate `dispatcher`) owns storage, HTTP and timers and calls into this crate.
//!
//! ```
//! use diagnosis_core::{triage, Outcome, SafetyFlags, TriageInput, TriageRules};
//! use domain::{FaultCategory, LatLon, RoadKind, Service};
//!
//! let rules = TriageRules::defaults();
//! let input = TriageInput {
//!     category: FaultCategory::KeyFob,
//!     symptoms: vec!["key_not_detected".into()],
//!     powertrain: None,
//!     service: Service::Tow,
//!     road_kind: RoadKind::Urban,
//!     position: LatLon::new(31.2304, 121.4737).unwrap(),
//!     at: "2026-05-04T02:00:00Z".parse().unwrap(), // 10:00 in Shanghai
//!     safety: SafetyFlags::default(),
//! };
//! let decision = triage(&rules, &input);
//! assert!(matches!(decision.outcome, Outcome::PhoneSolvable { .. }));
//! ```

pub mod phone_bridge;
pub mod queue;
pub mod report;
pub mod rules;
pub mod safety;
pub mod solar;
pub mod triage;

pub use phone_bridge::{Binding, BridgeError, InMemoryBridge, NumberPool, PhoneBridge, PoolNumber};
pub use queue::{
    ClaimLapse, FallbackDue, LapseReason, QUEUE_ORDER_SQL, QueueError, QueueKey, QueuePolicy,
    Ticket, TicketOutcome,
};
pub use report::{DiagnosisRecord, DiagnosisReport, DurationStats, ReportCase, ReportFigures};
pub use rules::{
    Conditions, DEFAULT_RULES_TOML, FALLBACK_RULE_ID, FallbackDocument, OutcomeKind, PhoneFix,
    Rule, RuleDocument, RuleId, RuleOutcome, RulesDocument, RulesError, RulesProblem, Skill,
    TriageRules, Verdict,
};
pub use safety::{DARKNESS_SUN_ELEVATION_DEG, SafetyFlags, is_dark, safety_reasons};
pub use solar::sun_elevation_deg;
pub use triage::{Outcome, Reason, ReasonCode, TriageDecision, TriageInput, triage};
