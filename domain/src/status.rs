//! The case status machine (DESIGN §3). A status only changes along an edge listed in
//! [`CaseStatus::allowed_next`]; every other change is refused with [`IllegalTransition`]
//! and never applied.
//!
//! ```text
//! new ──► diagnosing ──► resolved_remotely
//!  │          │
//!  └──────────┴──► dispatching ──► assigned ──► en_route ──► on_scene ──► in_service ──► completed
//!                     │   ▲           ▲                          └────────────────────────────▲
//!                     ▼   │           │
//!                   escalated ────────┘
//! any non-terminal status ──► cancelled
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Just received, not yet triaged.
    New,
    /// Waiting for, or talking to, a phone expert.
    Diagnosing,
    /// The phone expert fixed it; no vehicle moved. Terminal.
    ResolvedRemotely,
    /// Looking for a vehicle: offers are out.
    Dispatching,
    /// No vehicle accepted; an agent must act.
    Escalated,
    /// A vehicle accepted the job.
    Assigned,
    /// The vehicle is on its way.
    EnRoute,
    /// The vehicle reached the customer.
    OnScene,
    /// Towing or repair under way.
    InService,
    /// Done. Terminal.
    Completed,
    /// Called off by the customer or an agent. Terminal.
    Cancelled,
}

impl CaseStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [CaseStatus; 11] = [
        CaseStatus::New,
        CaseStatus::Diagnosing,
        CaseStatus::ResolvedRemotely,
        CaseStatus::Dispatching,
        CaseStatus::Escalated,
        CaseStatus::Assigned,
        CaseStatus::EnRoute,
        CaseStatus::OnScene,
        CaseStatus::InService,
        CaseStatus::Completed,
        CaseStatus::Cancelled,
    ];

    /// The statuses this one may change to.
    ///
    /// ```
    /// use domain::CaseStatus;
    /// assert!(CaseStatus::OnScene.allowed_next().contains(&CaseStatus::Completed));
    /// assert!(CaseStatus::Completed.allowed_next().is_empty());
    /// ```
    pub fn allowed_next(self) -> &'static [CaseStatus] {
        use CaseStatus::*;
        match self {
            New => &[Diagnosing, Dispatching, Cancelled],
            Diagnosing => &[ResolvedRemotely, Dispatching, Cancelled],
            Dispatching => &[Assigned, Escalated, Cancelled],
            Escalated => &[Dispatching, Assigned, Cancelled],
            Assigned => &[EnRoute, Cancelled],
            EnRoute => &[OnScene, Cancelled],
            // `in_service` may be skipped for an on-the-spot fix.
            OnScene => &[InService, Completed, Cancelled],
            InService => &[Completed, Cancelled],
            ResolvedRemotely | Completed | Cancelled => &[],
        }
    }

    /// Whether the case is closed for good.
    pub fn is_terminal(self) -> bool {
        self.allowed_next().is_empty()
    }

    /// Whether `self → to` is an edge of the machine.
    pub fn can_become(self, to: CaseStatus) -> bool {
        self.allowed_next().contains(&to)
    }

    /// Applies `self → to`, or refuses it.
    ///
    /// ```
    /// use domain::CaseStatus;
    /// assert_eq!(CaseStatus::New.transition(CaseStatus::Dispatching), Ok(CaseStatus::Dispatching));
    /// assert!(CaseStatus::New.transition(CaseStatus::Completed).is_err());
    /// ```
    pub fn transition(self, to: CaseStatus) -> Result<CaseStatus, IllegalTransition> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The snake_case name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        use CaseStatus::*;
        match self {
            New => "new",
            Diagnosing => "diagnosing",
            ResolvedRemotely => "resolved_remotely",
            Dispatching => "dispatching",
            Escalated => "escalated",
            Assigned => "assigned",
            EnRoute => "en_route",
            OnScene => "on_scene",
            InService => "in_service",
            Completed => "completed",
            Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`CaseStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown case status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for CaseStatus {
    type Err = UnknownStatus;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CaseStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

/// A refused status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a case cannot go from `{from}` to `{to}`")]
pub struct IllegalTransition {
    /// The status the case is in.
    pub from: CaseStatus,
    /// The status that was asked for.
    pub to: CaseStatus,
}

#[cfg(test)]
mod tests {
    use super::CaseStatus::{self, *};
    use proptest::prelude::*;

    /// The legal edges, written out from DESIGN §3 independently of `allowed_next`.
    const DESIGN_EDGES: &[(CaseStatus, CaseStatus)] = &[
        (New, Diagnosing),
        (Diagnosing, ResolvedRemotely),
        (New, Dispatching),
        (Diagnosing, Dispatching),
        (Dispatching, Assigned),
        (Assigned, EnRoute),
        (EnRoute, OnScene),
        (OnScene, InService),
        (InService, Completed),
        (OnScene, Completed),
        (Dispatching, Escalated),
        (Escalated, Dispatching),
        (Escalated, Assigned),
        (New, Cancelled),
        (Diagnosing, Cancelled),
        (Dispatching, Cancelled),
        (Escalated, Cancelled),
        (Assigned, Cancelled),
        (EnRoute, Cancelled),
        (OnScene, Cancelled),
        (InService, Cancelled),
    ];

    #[test]
    fn the_machine_allows_exactly_the_design_edges() {
        for from in CaseStatus::ALL {
            for to in CaseStatus::ALL {
                let in_design = DESIGN_EDGES.contains(&(from, to));
                assert_eq!(
                    from.transition(to).is_ok(),
                    in_design,
                    "{from} -> {to} should be {}",
                    if in_design { "legal" } else { "refused" }
                );
            }
        }
    }

    #[test]
    fn only_the_three_closing_statuses_are_terminal() {
        let terminal: Vec<_> = CaseStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![ResolvedRemotely, Completed, Cancelled]);
    }

    #[test]
    fn status_names_round_trip_through_text_and_json() {
        for status in CaseStatus::ALL {
            assert_eq!(status.as_str().parse::<CaseStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("finished".parse::<CaseStatus>().is_err());
    }

    #[test]
    fn a_refused_transition_names_both_ends() {
        let error = Completed.transition(Dispatching).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a case cannot go from `completed` to `dispatching`"
        );
    }

    fn any_status() -> impl Strategy<Value = CaseStatus> {
        proptest::sample::select(CaseStatus::ALL.to_vec())
    }

    proptest! {
        /// Random attempts, applied through the machine as the server applies them: a
        /// refused attempt leaves the status unchanged; the history of accepted statuses
        /// always obeys the lifecycle.
        #[test]
        fn random_transition_sequences_never_reach_an_illegal_state(
            attempts in proptest::collection::vec(any_status(), 0..60)
        ) {
            let mut status = New;
            let mut history = vec![New];
            for wanted in attempts {
                match status.transition(wanted) {
                    Ok(next) => {
                        prop_assert!(DESIGN_EDGES.contains(&(status, next)));
                        status = next;
                        history.push(next);
                    }
                    Err(refused) => {
                        prop_assert_eq!(refused.from, status);
                        prop_assert!(!DESIGN_EDGES.contains(&(status, wanted)));
                    }
                }
            }
            // Nothing follows a terminal status.
            if let Some(position) = history.iter().position(|s| s.is_terminal()) {
                prop_assert_eq!(position, history.len() - 1);
            }
            // A case is only resolved by phone after a diagnosis, and no vehicle moved.
            if history.contains(&ResolvedRemotely) {
                prop_assert!(history.contains(&Diagnosing));
                prop_assert!(!history.contains(&Dispatching));
            }
            // A vehicle is only on its way after someone was assigned, and only on scene
            // after being on its way.
            for (later, earlier) in [(EnRoute, Assigned), (OnScene, EnRoute), (InService, OnScene)] {
                if let Some(at) = history.iter().position(|s| *s == later) {
                    prop_assert!(history[..at].contains(&earlier));
                }
            }
            // Completion needs the vehicle on scene.
            if history.contains(&Completed) {
                prop_assert!(history.contains(&OnScene));
            }
            // Each status is visited at most once, except the dispatch/escalation loop.
            for once in [New, Diagnosing, Assigned, EnRoute, OnScene, InService] {
                prop_assert!(history.iter().filter(|s| **s == once).count() <= 1);
            }
        }
    }
}
