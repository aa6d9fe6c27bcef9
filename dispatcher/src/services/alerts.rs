//! Alerts: the one way an alert is raised, and how agents handle it.
//!
//! Three parts of the server raise alerts: the delay rules of tracking (`late_departure`,
//! `stalled`, `moving_away`, `gps_lost`, `arrival_at_risk`), the offer cascade
//! (`no_vehicle` when nobody takes a job) and the diagnosis desk (`diagnosis_wait` when no
//! expert picked a case up in time). Each builds its alert with [`Alerts::draft`]; a
//! tracking alert is stored on its own with [`Alerts::raise`], the other two in the same
//! transaction as the status change they come with (the store's `escalate_case` and
//! `fall_back`), after which [`Alerts::raised`] records them. Either way an alert is
//! counted once, by kind, and logged without a position or a phone number. The database
//! keeps at most one live alert per case and kind, so instances racing to raise the same
//! alert produce one.

use std::sync::Arc;

use domain::ports::{AlertUpdate, NewAlert, Store, StoreError};
use domain::{Actor, Alert, AlertId, AlertKind, AlertState, CaseId, Clock, Severity, Timestamp};

/// Alerts raised, by `kind`.
pub const ALERTS_RAISED: &str = "rescue_alerts_raised_total";
/// Seconds between an alert and the promised arrival it warns about.
pub const ALERT_LEAD_TIME: &str = "rescue_alert_lead_time_seconds";

/// Raising and handling alerts (see the module docs).
pub struct Alerts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Alerts {
    /// The alert service over `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Alerts {
        Alerts { store, clock }
    }

    /// A new alert, not stored yet.
    pub fn draft(
        kind: AlertKind,
        severity: Severity,
        predicted_breach: Option<Timestamp>,
        message: String,
    ) -> NewAlert {
        NewAlert {
            id: AlertId::new_v7(),
            kind,
            severity,
            predicted_breach,
            message,
        }
    }

    /// Stores an alert on its own. `None` when the case already has a live alert of this
    /// kind (raised by another instance, or earlier in the same episode).
    pub async fn raise(
        &self,
        case_id: CaseId,
        alert: &NewAlert,
        promised_arrival: Option<Timestamp>,
    ) -> Result<Option<Alert>, StoreError> {
        let raised = self
            .store
            .raise_alert(case_id, alert, self.clock.now())
            .await?;
        if let Some(raised) = &raised {
            Self::raised(case_id, alert);
            if let Some(promised) = promised_arrival {
                let lead_s = (promised - raised.raised_at).num_milliseconds() as f64 / 1000.0;
                metrics::histogram!(ALERT_LEAD_TIME).record(lead_s.max(0.0));
            }
        }
        Ok(raised)
    }

    /// Records an alert that was stored with the change it comes with: counted by kind
    /// and logged. Call it only when the alert was really stored.
    pub fn raised(case_id: CaseId, alert: &NewAlert) {
        metrics::counter!(ALERTS_RAISED, "kind" => alert.kind.as_str()).increment(1);
        tracing::info!(case_id = %case_id, kind = %alert.kind, severity = %alert.severity, "alert raised");
    }

    /// Whether an alert drafted for a change that may have stored it (the store raises
    /// none while the case has a live one of the kind) was stored, and if so records it.
    pub async fn record_if_stored(&self, case_id: CaseId, alert: &NewAlert) {
        match self.store.get_alert(alert.id).await {
            Ok(Some(_)) => Self::raised(case_id, alert),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(case_id = %case_id, error = %error, "could not tell whether an alert was raised");
            }
        }
    }

    /// Makes a live alert more severe or moves its predicted breach.
    pub async fn escalate(
        &self,
        case_id: CaseId,
        kind: AlertKind,
        update: &AlertUpdate,
    ) -> Result<Option<Alert>, StoreError> {
        self.store
            .escalate_alert(case_id, kind, update, self.clock.now())
            .await
    }

    /// Clears a live alert whose cause went away.
    pub async fn clear(
        &self,
        case_id: CaseId,
        kind: AlertKind,
        reason: &str,
    ) -> Result<Option<Alert>, StoreError> {
        self.store
            .clear_alert(case_id, kind, reason, self.clock.now())
            .await
    }

    /// An agent takes an open alert on.
    pub async fn acknowledge(&self, id: AlertId, actor: &Actor) -> Result<Alert, StoreError> {
        self.store
            .acknowledge_alert(id, actor, self.clock.now())
            .await
    }

    /// An agent closes an alert.
    pub async fn resolve(&self, id: AlertId, actor: &Actor) -> Result<Alert, StoreError> {
        self.store.resolve_alert(id, actor, self.clock.now()).await
    }

    /// Alerts, newest first, optionally in one state.
    pub async fn list(
        &self,
        state: Option<AlertState>,
        limit: u32,
    ) -> Result<Vec<Alert>, StoreError> {
        self.store.list_alerts(state, limit).await
    }
}
