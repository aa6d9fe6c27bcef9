//! Accounts (providers, users, sessions), cases with their idempotency keys and
//! timeline, and maintenance.

use crate::backend::{Backend, SqlStore, Transaction as _};
use crate::sql::{Conn, query};

#[async_trait::async_trait]
impl<B: Backend> domain::ports::AccountStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %provider.id))]
    async fn insert_provider(
        &self,
        provider: &domain::Provider,
        api_key_hash: &[u8; 32],
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO providers (id, name, api_key_hash, webhook_url, service_area, priority, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(provider.id.as_uuid())
        .bind(&provider.name)
        .bind(&api_key_hash[..])
        .bind(&provider.webhook_url)
        .bind(provider.service_area.as_ref().map(sqlx::types::Json))
        .bind(provider.priority)
        .bind(domain::time::to_storage_precision(provider.created_at))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn provider_by_api_key_hash(
        &self,
        api_key_hash: &[u8; 32],
    ) -> Result<Option<domain::Provider>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM providers WHERE api_key_hash = $1",
            crate::rows::PROVIDER_COLUMNS
        );
        let row: Option<crate::rows::ProviderRow> = query(sql)
            .bind(&api_key_hash[..])
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(Into::into))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %id))]
    async fn get_provider(
        &self,
        id: domain::ProviderId,
    ) -> Result<Option<domain::Provider>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM providers WHERE id = $1",
            crate::rows::PROVIDER_COLUMNS
        );
        let row: Option<crate::rows::ProviderRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(Into::into))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, user_id = %user.id))]
    async fn insert_user(
        &self,
        user: &domain::User,
        password_hash: &str,
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO users (id, username, display_name, password_hash, role, skills, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.as_uuid())
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(password_hash)
        .bind(user.role.as_str())
        .bind(sqlx::types::Json(&user.skills))
        .bind(domain::time::to_storage_precision(user.created_at))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(domain::User, String)>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {}, password_hash FROM users WHERE username = $1",
            crate::rows::USER_COLUMNS
        );
        let row: Option<crate::rows::CredentialsRow> = query(sql)
            .bind(username)
            .fetch_optional(self.reader())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some((row.user.try_into()?, row.password_hash))),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, user_id = %id))]
    async fn get_user(
        &self,
        id: domain::UserId,
    ) -> Result<Option<domain::User>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM users WHERE id = $1",
            crate::rows::USER_COLUMNS
        );
        let row: Option<crate::rows::UserRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_optional(self.reader())
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, user_id = %session.user_id))]
    async fn insert_session(
        &self,
        session: &domain::ports::NewSession,
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&session.token_hash[..])
        .bind(session.user_id.as_uuid())
        .bind(domain::time::to_storage_precision(session.created_at))
        .bind(domain::time::to_storage_precision(session.expires_at))
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn session_user(
        &self,
        token_hash: &[u8; 32],
        now: domain::Timestamp,
    ) -> Result<Option<domain::User>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM users WHERE id = \
             (SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > $2)",
            crate::rows::USER_COLUMNS
        );
        let row: Option<crate::rows::UserRow> = query(sql)
            .bind(&token_hash[..])
            .bind(domain::time::to_storage_precision(now))
            .fetch_optional(self.reader())
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(&mut tx)
            .await?;
        tx.commit().await
    }
}

// The helpers are for the queries of this crate, over its crate-private `Backend`.
#[allow(private_bounds)]
impl<B: Backend> SqlStore<B> {
    /// Inserts an event with the next sequence number of its case, which the caller
    /// has just taken by bumping `cases.last_event_seq` in the same transaction.
    pub(crate) async fn insert_event(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        seq: i64,
        event: &domain::NewEvent,
    ) -> Result<domain::Event, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(event.at);
        let (id,): (i64,) = query(
            "INSERT INTO case_events (case_id, seq, at, kind, actor, data) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(case_id.as_uuid())
        .bind(seq)
        .bind(at)
        .bind(event.kind.as_str())
        .bind(event.actor.to_string())
        .bind(sqlx::types::Json(&event.data))
        .fetch_one(&mut *tx)
        .await?;
        Ok(event.clone().stored(id, case_id, seq, at))
    }

    /// Inserts events numbered `first_seq` onwards in one statement. For a case
    /// nobody else can see yet (its row is in `tx`), whose counter the caller set.
    pub(crate) async fn insert_events(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        first_seq: i64,
        events: &[&domain::NewEvent],
    ) -> Result<(), domain::ports::StoreError> {
        let mut query = query("INSERT INTO case_events (case_id, seq, at, kind, actor, data) ");
        query.push_values(events.iter().zip(first_seq..), |row, (event, seq)| {
            row.push_bind(case_id.as_uuid())
                .push_bind(seq)
                .push_bind(domain::time::to_storage_precision(event.at))
                .push_bind(event.kind.as_str())
                .push_bind(event.actor.to_string())
                .push_bind(sqlx::types::Json(&event.data));
        });
        query.execute(&mut *tx).await?;
        Ok(())
    }

    /// Takes the next event sequence number of a case and returns it with the
    /// case's current status. Bumping the counter locks the case row (PostgreSQL)
    /// for the rest of the transaction, so concurrent changes to one case queue.
    pub(crate) async fn next_event_seq(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        now: domain::Timestamp,
    ) -> Result<(i64, domain::CaseStatus), domain::ports::StoreError> {
        let row: Option<(i64, String)> = query(
            "UPDATE cases SET last_event_seq = last_event_seq + 1, updated_at = $2 \
             WHERE id = $1 RETURNING last_event_seq, status",
        )
        .bind(case_id.as_uuid())
        .bind(domain::time::to_storage_precision(now))
        .fetch_optional(&mut *tx)
        .await?;
        let (seq, status) = row.ok_or(domain::ports::StoreError::NotFound)?;
        let status = status
            .parse()
            .map_err(|_| crate::error::corrupt("status", &status))?;
        Ok((seq, status))
    }

    pub(crate) async fn fetch_case(
        executor: impl Conn,
        id: domain::CaseId,
    ) -> Result<Option<domain::Case>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM cases WHERE id = $1",
            crate::rows::CASE_COLUMNS
        );
        let row: Option<crate::rows::CaseRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_optional(executor)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Inserts a new case with its `created` event (and claims its idempotency key)
    /// in `tx`. `Some(Replayed)` when the key was used before: nothing was written
    /// and the caller rolls back.
    pub(crate) async fn insert_case(
        tx: &mut B::Tx<'_>,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
    ) -> Result<Option<domain::ports::CreateCaseOutcome>, domain::ports::StoreError> {
        if let Some(replayed) = Self::claim_idempotency_key(tx, case.id, idempotency).await? {
            return Ok(Some(replayed));
        }
        let row = crate::rows::NewCaseRow {
            status: case.status,
            dispatch_round: 0,
            last_event_seq: 1,
            updated_at: case.updated_at,
        };
        Self::insert_case_row(tx, case, &row).await?;
        Self::insert_event(tx, case.id, 1, created).await?;
        Ok(None)
    }

    /// Claims a case creation's idempotency key in `tx`. `Some(Replayed)` when the
    /// key was used before: nothing was written and the caller rolls back.
    pub(crate) async fn claim_idempotency_key(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
    ) -> Result<Option<domain::ports::CreateCaseOutcome>, domain::ports::StoreError> {
        if let Some(claim) = idempotency {
            // The key row goes first: a concurrent request with the same key waits
            // on it (PostgreSQL) or behind the single writer (SQLite), then finds it.
            let inserted = query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, case_id, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(&claim.scope)
            .bind(&claim.key)
            .bind(&claim.request_hash[..])
            .bind(case_id.as_uuid())
            .bind(sqlx::types::Json(&claim.response))
            .bind(domain::time::to_storage_precision(claim.created_at))
            .execute(&mut *tx)
            .await?;
            if inserted == 0 {
                return Ok(Some(Self::read_replay(&mut *tx, claim).await?));
            }
        }
        Ok(None)
    }

    /// Inserts the row of a new case, in the status and with the event counter
    /// `row` gives (the caller inserts events up to that number).
    pub(crate) async fn insert_case_row(
        tx: &mut B::Tx<'_>,
        case: &domain::Case,
        row: &crate::rows::NewCaseRow,
    ) -> Result<(), domain::ports::StoreError> {
        let query = query(
            "INSERT INTO cases (id, channel, status, service, tier, customer_name, customer_phone, \
             member_id, plate, vehicle_model, powertrain, lat, lon, accuracy_m, address, road_kind, \
             fault_category, symptoms, fault_description, promised_arrival, created_at, updated_at, \
             last_event_seq, dispatch_round) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21, $22, $23, $24)",
        );
        Self::bind_case_columns(query, case, row.status)
            .bind(domain::time::to_storage_precision(row.updated_at))
            .bind(row.last_event_seq)
            .bind(row.dispatch_round)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Binds a new case's columns `id` to `created_at` (`$1`–`$21`, in the order of
    /// `insert_case_row`'s column list), with the case in `status`.
    pub(crate) fn bind_case_columns(
        query: crate::sql::Query,
        case: &domain::Case,
        status: domain::CaseStatus,
    ) -> crate::sql::Query {
        query
            .bind(case.id.as_uuid())
            .bind(case.channel.as_str())
            .bind(status.as_str())
            .bind(case.service.as_str())
            .bind(case.tier.as_str())
            .bind(&case.customer.name)
            .bind(case.customer.phone.as_str())
            .bind(&case.customer.member_id)
            .bind(&case.customer.plate)
            .bind(&case.customer.vehicle_model)
            .bind(case.customer.powertrain.map(|p| p.as_str()))
            .bind(case.location.position.lat())
            .bind(case.location.position.lon())
            .bind(case.location.accuracy_m)
            .bind(&case.location.address)
            .bind(case.location.road_kind.as_str())
            .bind(case.fault.category.as_str())
            .bind(sqlx::types::Json(&case.fault.symptoms))
            .bind(&case.fault.description)
            .bind(
                case.promised_arrival
                    .map(domain::time::to_storage_precision),
            )
            .bind(domain::time::to_storage_precision(case.created_at))
    }

    /// The first answer to a case creation whose key was used before.
    pub(crate) async fn read_replay(
        executor: impl Conn,
        claim: &domain::ports::IdempotencyClaim,
    ) -> Result<domain::ports::CreateCaseOutcome, domain::ports::StoreError> {
        let row: crate::rows::IdempotencyRow = query(
            "SELECT case_id, request_hash, response FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .fetch_one(executor)
        .await?;
        let request_hash: [u8; 32] = row
            .request_hash
            .as_slice()
            .try_into()
            .map_err(|_| crate::error::corrupt("request hash", "wrong length"))?;
        Ok(domain::ports::CreateCaseOutcome::Replayed {
            case_id: domain::CaseId(row.case_id),
            request_hash,
            response: row.response.0,
        })
    }

    /// The case as `insert_case` stored it (times at storage precision).
    pub(crate) fn stored_case(case: &domain::Case) -> domain::Case {
        let mut stored = case.clone();
        stored.created_at = domain::time::to_storage_precision(case.created_at);
        stored.updated_at = domain::time::to_storage_precision(case.updated_at);
        stored.promised_arrival = case
            .promised_arrival
            .map(domain::time::to_storage_precision);
        stored
    }
}

#[async_trait::async_trait]
impl<B: Backend> domain::ports::CaseStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case.id))]
    async fn create_case(
        &self,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
    ) -> Result<domain::ports::CreateCaseOutcome, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(replayed) = Self::insert_case(&mut tx, case, created, idempotency).await? {
            tx.rollback().await?;
            return Ok(replayed);
        }
        tx.commit().await?;
        Ok(domain::ports::CreateCaseOutcome::Created(Box::new(
            Self::stored_case(case),
        )))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %id))]
    async fn get_case(
        &self,
        id: domain::CaseId,
    ) -> Result<Option<domain::Case>, domain::ports::StoreError> {
        Self::fetch_case(self.reader(), id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn list_cases(
        &self,
        filter: &domain::ports::CaseFilter,
    ) -> Result<Vec<domain::Case>, domain::ports::StoreError> {
        let mut query = query(format!(
            "SELECT {} FROM cases WHERE 1 = 1",
            crate::rows::CASE_COLUMNS
        ));
        if !filter.statuses.is_empty() {
            query.push(" AND status IN (");
            for (index, status) in filter.statuses.iter().enumerate() {
                query
                    .push(if index == 0 { "" } else { ", " })
                    .push_bind(status.as_str());
            }
            query.push(")");
        }
        if let Some(channel) = filter.channel {
            query.push(" AND channel = ").push_bind(channel.as_str());
        }
        if let Some(service) = filter.service {
            query.push(" AND service = ").push_bind(service.as_str());
        }
        if let Some(from) = filter.created_from {
            query
                .push(" AND created_at >= ")
                .push_bind(domain::time::to_storage_precision(from));
        }
        if let Some(to) = filter.created_to {
            query
                .push(" AND created_at < ")
                .push_bind(domain::time::to_storage_precision(to));
        }
        if let Some(before) = filter.before {
            query.push(" AND id < ").push_bind(before.as_uuid());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows: Vec<crate::rows::CaseRow> = query.fetch_all(self.reader()).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %id))]
    async fn transition_case(
        &self,
        id: domain::CaseId,
        transition: &domain::ports::Transition,
    ) -> Result<(domain::Case, domain::Event), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let (seq, from) = Self::next_event_seq(&mut tx, id, transition.at).await?;
        if let Some(expected) = transition.expected_from
            && expected != from
        {
            return Err(domain::ports::StoreError::Conflict(format!(
                "case is `{from}`, not `{expected}`"
            )));
        }
        let to = from.transition(transition.to)?;
        query(
            "UPDATE cases SET status = $2, \
             dispatch_round = dispatch_round + CASE WHEN $2 = 'dispatching' THEN 1 ELSE 0 END WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(to.as_str())
            .execute(&mut tx)
            .await?;
        let event = domain::NewEvent::new(
            domain::EventKind::StatusChanged,
            transition.actor.clone(),
            transition.at,
            serde_json::json!({
                "from": from,
                "to": to,
                "reason": transition.reason,
            }),
        );
        let event = Self::insert_event(&mut tx, id, seq, &event).await?;
        let case = Self::fetch_case(&mut tx, id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok((case, event))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %id))]
    async fn append_event(
        &self,
        id: domain::CaseId,
        event: &domain::NewEvent,
    ) -> Result<domain::Event, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let (seq, _) = Self::next_event_seq(&mut tx, id, event.at).await?;
        let event = Self::insert_event(&mut tx, id, seq, event).await?;
        tx.commit().await?;
        Ok(event)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %id))]
    async fn timeline(
        &self,
        id: domain::CaseId,
    ) -> Result<Vec<domain::Event>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM case_events WHERE case_id = $1 ORDER BY seq",
            crate::rows::EVENT_COLUMNS
        );
        let rows: Vec<crate::rows::EventRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn count_cases_by_status(
        &self,
    ) -> Result<Vec<(domain::CaseStatus, u64)>, domain::ports::StoreError> {
        let rows: Vec<(String, i64)> =
            query("SELECT status, COUNT(*) FROM cases GROUP BY status ORDER BY status")
                .fetch_all(self.reader())
                .await?;
        rows.into_iter()
            .map(|(status, count)| {
                let status = status
                    .parse()
                    .map_err(|_| crate::error::corrupt("status", &status))?;
                Ok((status, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl<B: Backend> domain::ports::MaintenanceStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn ping(&self) -> Result<(), domain::ports::StoreError> {
        query("SELECT 1").execute(self.reader()).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn purge_expired(
        &self,
        now: domain::Timestamp,
        keys_before: domain::Timestamp,
    ) -> Result<u64, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let sessions = query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(domain::time::to_storage_precision(now))
            .execute(&mut tx)
            .await?;
        let keys = query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(domain::time::to_storage_precision(keys_before))
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(sessions + keys)
    }
}
