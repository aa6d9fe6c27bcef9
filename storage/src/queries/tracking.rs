//! Tracking queries (trajectories, tracker state, rule-driven and agent-handled alerts,
//! the event log as a stream), written once for both backends (see `queries/mod.rs`). Alert
//! changes take the case lock first, like every other change to a case.

use crate::backend::{Backend, SqlStore, Transaction as _};
use crate::sql::{Conn, query};

// The helpers are for the queries of this crate, over its crate-private `Backend`.
#[allow(private_bounds)]
impl<B: Backend> SqlStore<B> {
    pub(crate) async fn fetch_alert(
        executor: impl Conn,
        id: domain::AlertId,
    ) -> Result<Option<domain::Alert>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM alerts WHERE id = $1",
            crate::rows::ALERT_COLUMNS
        );
        let row: Option<crate::rows::AlertRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_optional(executor)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    pub(crate) fn alert_event(
        kind: domain::EventKind,
        actor: domain::Actor,
        at: domain::Timestamp,
        alert: &domain::Alert,
        reason: Option<&str>,
    ) -> domain::NewEvent {
        domain::NewEvent::new(
            kind,
            actor,
            at,
            serde_json::json!({
                "alert_id": alert.id,
                "kind": alert.kind,
                "severity": alert.severity,
                "state": alert.state,
                "message": alert.message,
                "predicted_breach": alert.predicted_breach,
                "reason": reason,
            }),
        )
    }
}

#[async_trait::async_trait]
impl<B: Backend> domain::ports::TrackingStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn insert_case_fixes(
        &self,
        fixes: &[domain::ports::CaseFix],
    ) -> Result<u64, domain::ports::StoreError> {
        if fixes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_fix_write().await?;
        let mut inserted = 0;
        for chunk in fixes.chunks(500) {
            let mut query = query(
                "INSERT INTO case_fixes (case_id, vehicle_id, ts, lat, lon, speed_kmh, heading_deg, accuracy_m, \
                 source, live, received_at) ",
            );
            query.push_values(chunk, |row, stored| {
                row.push_bind(stored.case_id.as_uuid())
                    .push_bind(stored.vehicle_id.as_uuid())
                    .push_bind(domain::time::to_storage_precision(stored.fix.ts))
                    .push_bind(stored.fix.position.lat())
                    .push_bind(stored.fix.position.lon())
                    .push_bind(stored.fix.speed_kmh)
                    .push_bind(stored.fix.heading)
                    .push_bind(stored.fix.accuracy_m)
                    .push_bind(stored.fix.source.as_str())
                    .push_bind(stored.live)
                    .push_bind(domain::time::to_storage_precision(stored.received_at));
            });
            inserted += query.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn case_fixes(
        &self,
        case_id: domain::CaseId,
    ) -> Result<Vec<domain::ports::CaseFix>, domain::ports::StoreError> {
        let rows: Vec<crate::rows::CaseFixRow> = query(
            "SELECT case_id, vehicle_id, ts, lat, lon, speed_kmh, heading_deg, accuracy_m, source, live, received_at \
             FROM case_fixes WHERE case_id = $1 ORDER BY ts, id",
        )
        .bind(case_id.as_uuid())
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn purge_case_fixes(
        &self,
        before: domain::Timestamp,
    ) -> Result<u64, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let purged = query("DELETE FROM case_fixes WHERE received_at < $1")
            .bind(domain::time::to_storage_precision(before))
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id, vehicle_id = %vehicle_id))]
    async fn save_tracking(
        &self,
        case_id: domain::CaseId,
        vehicle_id: domain::VehicleId,
        state: &serde_json::Value,
        predicted_arrival: Option<domain::Timestamp>,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO case_tracking (case_id, vehicle_id, state, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (case_id) DO UPDATE SET vehicle_id = excluded.vehicle_id, state = excluded.state, \
             updated_at = excluded.updated_at",
        )
        .bind(case_id.as_uuid())
        .bind(vehicle_id.as_uuid())
        .bind(sqlx::types::Json(state))
        .bind(domain::time::to_storage_precision(at))
        .execute(&mut tx)
        .await?;
        // A prediction is not a change of the case: `updated_at` stays.
        query("UPDATE cases SET predicted_arrival = $2 WHERE id = $1")
            .bind(case_id.as_uuid())
            .bind(predicted_arrival.map(domain::time::to_storage_precision))
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn load_tracking(
        &self,
        case_id: domain::CaseId,
    ) -> Result<Option<serde_json::Value>, domain::ports::StoreError> {
        let row: Option<(sqlx::types::Json<serde_json::Value>,)> =
            query("SELECT state FROM case_tracking WHERE case_id = $1")
                .bind(case_id.as_uuid())
                .fetch_optional(self.reader())
                .await?;
        Ok(row.map(|(state,)| state.0))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn active_jobs(
        &self,
    ) -> Result<Vec<domain::ports::ActiveJob>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM offers WHERE state = 'accepted' AND released_at IS NULL",
            crate::rows::OFFER_COLUMNS
        );
        let jobs: Vec<crate::rows::OfferRow> = query(sql).fetch_all(self.reader()).await?;
        let mut active = Vec::with_capacity(jobs.len());
        for job in jobs {
            let job: domain::Offer = job.try_into()?;
            let Some(case) = Self::fetch_case(self.reader(), job.case_id).await? else {
                continue;
            };
            if matches!(
                case.status,
                domain::CaseStatus::Assigned
                    | domain::CaseStatus::EnRoute
                    | domain::CaseStatus::OnScene
                    | domain::CaseStatus::InService
            ) {
                active.push(domain::ports::ActiveJob { case, job });
            }
        }
        Ok(active)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id, alert_id = %alert.id))]
    async fn raise_alert(
        &self,
        case_id: domain::CaseId,
        alert: &domain::ports::NewAlert,
        at: domain::Timestamp,
    ) -> Result<Option<domain::Alert>, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, case_id, at).await?;
        let sql = format!(
            "INSERT INTO alerts (id, case_id, kind, severity, state, raised_at, predicted_breach, message, updated_at) \
             VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $5) \
             ON CONFLICT (case_id, kind) WHERE state <> 'resolved' DO NOTHING RETURNING {}",
            crate::rows::ALERT_COLUMNS
        );
        let row: Option<crate::rows::AlertRow> = query(sql)
            .bind(alert.id.as_uuid())
            .bind(case_id.as_uuid())
            .bind(alert.kind.as_str())
            .bind(alert.severity.as_str())
            .bind(at)
            .bind(
                alert
                    .predicted_breach
                    .map(domain::time::to_storage_precision),
            )
            .bind(&alert.message)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: domain::Alert = row.try_into()?;
        let event = Self::alert_event(
            domain::EventKind::AlertRaised,
            domain::Actor::System,
            at,
            &stored,
            None,
        );
        Self::append_in_tx(&mut tx, case_id, event).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn escalate_alert(
        &self,
        case_id: domain::CaseId,
        kind: domain::AlertKind,
        update: &domain::ports::AlertUpdate,
        at: domain::Timestamp,
    ) -> Result<Option<domain::Alert>, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, case_id, at).await?;
        let sql = format!(
            "UPDATE alerts SET severity = $3, predicted_breach = $4, message = $5, updated_at = $6 \
             WHERE case_id = $1 AND kind = $2 AND state <> 'resolved' RETURNING {}",
            crate::rows::ALERT_COLUMNS
        );
        let row: Option<crate::rows::AlertRow> = query(sql)
            .bind(case_id.as_uuid())
            .bind(kind.as_str())
            .bind(update.severity.as_str())
            .bind(
                update
                    .predicted_breach
                    .map(domain::time::to_storage_precision),
            )
            .bind(&update.message)
            .bind(at)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: domain::Alert = row.try_into()?;
        let event = Self::alert_event(
            domain::EventKind::AlertEscalated,
            domain::Actor::System,
            at,
            &stored,
            None,
        );
        Self::append_in_tx(&mut tx, case_id, event).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn clear_alert(
        &self,
        case_id: domain::CaseId,
        kind: domain::AlertKind,
        reason: &str,
        at: domain::Timestamp,
    ) -> Result<Option<domain::Alert>, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, case_id, at).await?;
        let sql = format!(
            "UPDATE alerts SET state = 'resolved', resolved_by = 'system', resolved_at = $3, updated_at = $3 \
             WHERE case_id = $1 AND kind = $2 AND state <> 'resolved' RETURNING {}",
            crate::rows::ALERT_COLUMNS
        );
        let row: Option<crate::rows::AlertRow> = query(sql)
            .bind(case_id.as_uuid())
            .bind(kind.as_str())
            .bind(at)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: domain::Alert = row.try_into()?;
        let event = Self::alert_event(
            domain::EventKind::AlertResolved,
            domain::Actor::System,
            at,
            &stored,
            Some(reason),
        );
        Self::append_in_tx(&mut tx, case_id, event).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, alert_id = %id))]
    async fn acknowledge_alert(
        &self,
        id: domain::AlertId,
        actor: &domain::Actor,
        at: domain::Timestamp,
    ) -> Result<domain::Alert, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let alert = Self::fetch_alert(self.reader(), id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, alert.case_id, at).await?;
        let sql = format!(
            "UPDATE alerts SET state = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3, updated_at = $3 \
             WHERE id = $1 AND state = 'open' RETURNING {}",
            crate::rows::ALERT_COLUMNS
        );
        let row: Option<crate::rows::AlertRow> = query(sql)
            .bind(id.as_uuid())
            .bind(actor.to_string())
            .bind(at)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else {
            let current = Self::fetch_alert(&mut tx, id)
                .await?
                .ok_or(domain::ports::StoreError::NotFound)?;
            return Err(domain::ports::StoreError::Conflict(format!(
                "the alert is already {}",
                current.state
            )));
        };
        let stored: domain::Alert = row.try_into()?;
        let event = Self::alert_event(
            domain::EventKind::AlertAcknowledged,
            actor.clone(),
            at,
            &stored,
            None,
        );
        Self::append_in_tx(&mut tx, stored.case_id, event).await?;
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, alert_id = %id))]
    async fn resolve_alert(
        &self,
        id: domain::AlertId,
        actor: &domain::Actor,
        at: domain::Timestamp,
    ) -> Result<domain::Alert, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let alert = Self::fetch_alert(self.reader(), id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, alert.case_id, at).await?;
        let sql = format!(
            "UPDATE alerts SET state = 'resolved', resolved_by = $2, resolved_at = $3, updated_at = $3 \
             WHERE id = $1 AND state <> 'resolved' RETURNING {}",
            crate::rows::ALERT_COLUMNS
        );
        let row: Option<crate::rows::AlertRow> = query(sql)
            .bind(id.as_uuid())
            .bind(actor.to_string())
            .bind(at)
            .fetch_optional(&mut tx)
            .await?;
        let Some(row) = row else {
            return Err(domain::ports::StoreError::Conflict(
                "the alert is already resolved".into(),
            ));
        };
        let stored: domain::Alert = row.try_into()?;
        let event = Self::alert_event(
            domain::EventKind::AlertResolved,
            actor.clone(),
            at,
            &stored,
            Some("resolved by an agent"),
        );
        Self::append_in_tx(&mut tx, stored.case_id, event).await?;
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, alert_id = %id))]
    async fn get_alert(
        &self,
        id: domain::AlertId,
    ) -> Result<Option<domain::Alert>, domain::ports::StoreError> {
        Self::fetch_alert(self.reader(), id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, after_event_id = after))]
    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<domain::Event>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM case_events WHERE id > $1 ORDER BY id LIMIT $2",
            crate::rows::EVENT_COLUMNS
        );
        let rows: Vec<crate::rows::EventRow> = query(sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn last_event_id(&self) -> Result<i64, domain::ports::StoreError> {
        let (id,): (Option<i64>,) = query("SELECT MAX(id) FROM case_events")
            .fetch_one(self.reader())
            .await?;
        Ok(id.unwrap_or(0))
    }
}
