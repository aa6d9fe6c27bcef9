//! The webhook outbox, written once for both backends (see `queries/mod.rs`). The claim
//! statement differs: PostgreSQL skips rows another instance has locked; on SQLite the
//! single writer and the lease column do the same job.

use crate::backend::{Backend, SqlStore, Transaction as _};
use crate::sql::query;

#[async_trait::async_trait]
impl<B: Backend> domain::ports::WebhookStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn enqueue_webhooks(
        &self,
        deliveries: &[domain::ports::NewWebhook],
    ) -> Result<u64, domain::ports::StoreError> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut queued = 0;
        for delivery in deliveries {
            queued += query(
                "INSERT INTO webhook_deliveries (id, provider_id, event, case_id, source_event_id, url, body, \
                 next_attempt_at, deadline, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8) \
                 ON CONFLICT (source_event_id, provider_id, event) DO NOTHING",
            )
            .bind(delivery.id)
            .bind(delivery.provider_id.as_uuid())
            .bind(&delivery.event)
            .bind(delivery.case_id.map(|id| id.as_uuid()))
            .bind(delivery.source_event_id)
            .bind(&delivery.url)
            .bind(&delivery.body)
            .bind(domain::time::to_storage_precision(delivery.created_at))
            .bind(domain::time::to_storage_precision(delivery.deadline))
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(queued)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn claim_webhooks(
        &self,
        now: domain::Timestamp,
        limit: u32,
        lease_until: domain::Timestamp,
    ) -> Result<Vec<domain::ports::WebhookDelivery>, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<crate::rows::WebhookRow> = query(B::CLAIM_WEBHOOKS_SQL)
            .bind(domain::time::to_storage_precision(now))
            .bind(i64::from(limit))
            .bind(domain::time::to_storage_precision(lease_until))
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, delivery_id = %id))]
    async fn record_webhook_attempt(
        &self,
        id: uuid::Uuid,
        attempt: &domain::ports::WebhookAttempt,
        next_attempt_at: Option<domain::Timestamp>,
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, outcome, status_code, error, \
             latency_ms, response_excerpt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(id)
        .bind(i32::try_from(attempt.attempt).unwrap_or(i32::MAX))
        .bind(domain::time::to_storage_precision(attempt.started_at))
        .bind(&attempt.outcome)
        .bind(attempt.status_code.map(i32::from))
        .bind(&attempt.error)
        .bind(i32::try_from(attempt.latency_ms).unwrap_or(i32::MAX))
        .bind(&attempt.response_excerpt)
        .execute(&mut tx)
        .await?;
        query(
            "UPDATE webhook_deliveries SET attempts = $2, claimed_until = NULL, \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $1",
        )
        .bind(id)
        .bind(i32::try_from(attempt.attempt).unwrap_or(i32::MAX))
        .bind(next_attempt_at.map(domain::time::to_storage_precision))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, delivery_id = %id))]
    async fn webhook_delivered(
        &self,
        id: uuid::Uuid,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $2, claimed_until = NULL \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(domain::time::to_storage_precision(at))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, delivery_id = %id))]
    async fn webhook_dead_letter(
        &self,
        id: uuid::Uuid,
        reason: &str,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let row: Option<(Option<uuid::Uuid>, uuid::Uuid, String, i32)> = query(
            "UPDATE webhook_deliveries SET status = 'dead', dead_lettered_at = $2, dead_letter_reason = $3, \
             claimed_until = NULL WHERE id = $1 AND status = 'pending' \
             RETURNING case_id, provider_id, event, attempts",
        )
        .bind(id)
        .bind(at)
        .bind(reason)
        .fetch_optional(&mut tx)
        .await?;
        if let Some((Some(case_id), provider_id, event, attempts)) = row {
            let event = domain::NewEvent::new(
                domain::EventKind::WebhookDeadLettered,
                domain::Actor::System,
                at,
                serde_json::json!({"delivery_id": id, "provider_id": provider_id, "event": event,
                                   "attempts": attempts, "reason": reason}),
            );
            Self::append_in_tx(&mut tx, case_id.into(), event).await?;
        }
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = provider.map(tracing::field::display)))]
    async fn list_webhooks(
        &self,
        provider: Option<domain::ProviderId>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<domain::ports::WebhookDelivery>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM webhook_deliveries WHERE ($1 IS NULL OR provider_id = $1) \
             AND ($2 IS NULL OR status = $2) ORDER BY created_at DESC, id DESC LIMIT $3",
            crate::rows::WEBHOOK_COLUMNS
        );
        let rows: Vec<crate::rows::WebhookRow> = query(sql)
            .bind(provider.map(|id| id.as_uuid()))
            .bind(status)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, delivery_id = %id))]
    async fn webhook_attempts(
        &self,
        id: uuid::Uuid,
    ) -> Result<Vec<domain::ports::WebhookAttempt>, domain::ports::StoreError> {
        let rows: Vec<(
            i32,
            chrono::DateTime<chrono::Utc>,
            String,
            Option<i32>,
            Option<String>,
            i32,
            Option<String>,
        )> = query(
            "SELECT attempt, started_at, outcome, status_code, error, latency_ms, response_excerpt \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    attempt,
                    started_at,
                    outcome,
                    status_code,
                    error,
                    latency_ms,
                    response_excerpt,
                )| {
                    domain::ports::WebhookAttempt {
                        attempt: u32::try_from(attempt).unwrap_or(0),
                        started_at,
                        outcome,
                        status_code: status_code.and_then(|code| u16::try_from(code).ok()),
                        error,
                        latency_ms: u64::try_from(latency_ms).unwrap_or(0),
                        response_excerpt,
                    }
                },
            )
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn webhook_cursor(&self) -> Result<i64, domain::ports::StoreError> {
        let row: Option<(i64,)> = query("SELECT last_event_id FROM webhook_cursor WHERE id = 1")
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map_or(0, |(id,)| id))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn advance_webhook_cursor(&self, to: i64) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query("UPDATE webhook_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id < $1")
            .bind(to)
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %provider))]
    async fn rotate_webhook_secret(
        &self,
        provider: domain::ProviderId,
        at: domain::Timestamp,
    ) -> Result<domain::Provider, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE providers SET webhook_secret_generation = webhook_secret_generation + 1, \
             webhook_secret_rotated_at = $2 WHERE id = $1 RETURNING {}",
            crate::rows::PROVIDER_COLUMNS
        );
        let row: Option<crate::rows::ProviderRow> = query(sql)
            .bind(provider.as_uuid())
            .bind(domain::time::to_storage_precision(at))
            .fetch_optional(&mut tx)
            .await?;
        tx.commit().await?;
        row.map(Into::into)
            .ok_or(domain::ports::StoreError::NotFound)
    }
}
