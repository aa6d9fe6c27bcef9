//! Fleet and dispatch queries, written once for both backends (see `queries/mod.rs`).
//!
//! Every dispatch operation is one transaction that takes its locks in the same order —
//! the case row first (by bumping its event sequence), then offers, then vehicles — so
//! concurrent operations on one case queue instead of deadlocking, and the partial unique
//! indexes of migration 0002 refuse any double booking that slipped past the code.
//!
//! Statements that differ per backend come from the [`Backend`]:
//! `B::DUE_OFFERS_SQL` (PostgreSQL adds `FOR UPDATE OF c SKIP LOCKED` so several
//! instances can sweep at once), `B::APPEND_EVENT_SQL` (one statement takes the
//! sequence number and inserts the event: a CTE on PostgreSQL, a trigger on SQLite) and
//! `Backend::save_last_fixes` (upserts into `vehicle_positions`: PostgreSQL through `UNNEST`
//! arrays, SQLite through a JSON array and `json_each`, both in short chunks).

use crate::backend::{Backend, SqlStore, Transaction as _};
use crate::sql::{Conn, query};

// The helpers are for the queries of this crate, over its crate-private `Backend`.
#[allow(private_bounds)]
impl<B: Backend> SqlStore<B> {
    /// Appends an event under the case lock (taking the next sequence number).
    pub(crate) async fn append_in_tx(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        event: domain::NewEvent,
    ) -> Result<domain::Event, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(event.at);
        let row: Option<(i64, i64)> = query(B::APPEND_EVENT_SQL)
            .bind(case_id.as_uuid())
            .bind(at)
            .bind(event.kind.as_str())
            .bind(event.actor.to_string())
            .bind(sqlx::types::Json(&event.data))
            .fetch_optional(&mut *tx)
            .await?;
        let (id, seq) = row.ok_or(domain::ports::StoreError::NotFound)?;
        Ok(event.stored(id, case_id, seq, at))
    }

    /// Locks the case and returns its status.
    pub(crate) async fn lock_case(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        at: domain::Timestamp,
    ) -> Result<domain::CaseStatus, domain::ports::StoreError> {
        // Taking a sequence number locks the row; the number is given back by
        // rolling back if nothing follows, and otherwise simply skipped.
        let row: Option<(String,)> =
            query("UPDATE cases SET updated_at = $2 WHERE id = $1 RETURNING status")
                .bind(case_id.as_uuid())
                .bind(domain::time::to_storage_precision(at))
                .fetch_optional(&mut *tx)
                .await?;
        let (status,) = row.ok_or(domain::ports::StoreError::NotFound)?;
        status
            .parse()
            .map_err(|_| crate::error::corrupt("status", &status))
    }

    /// Moves the case along the status machine and records it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn change_status(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        from: domain::CaseStatus,
        to: domain::CaseStatus,
        promised_arrival: Option<domain::Timestamp>,
        actor: &domain::Actor,
        at: domain::Timestamp,
        reason: &str,
    ) -> Result<(), domain::ports::StoreError> {
        let to = from.transition(to)?;
        query(
            "UPDATE cases SET status = $2, promised_arrival = COALESCE($3, promised_arrival), \
             dispatch_round = dispatch_round + CASE WHEN $2 = 'dispatching' THEN 1 ELSE 0 END WHERE id = $1",
        )
        .bind(case_id.as_uuid())
        .bind(to.as_str())
        .bind(promised_arrival.map(domain::time::to_storage_precision))
        .execute(&mut *tx)
        .await?;
        let mut data = serde_json::json!({"from": from, "to": to, "reason": reason});
        if let Some(promised) = promised_arrival {
            data["promised_arrival"] =
                serde_json::json!(domain::time::to_storage_precision(promised));
        }
        Self::append_in_tx(
            tx,
            case_id,
            domain::NewEvent::new(domain::EventKind::StatusChanged, actor.clone(), at, data),
        )
        .await?;
        Ok(())
    }

    /// Sets a vehicle's state if it is in `from`; false when it was not.
    pub(crate) async fn move_vehicle(
        tx: &mut B::Tx<'_>,
        vehicle_id: domain::VehicleId,
        from: domain::VehicleState,
        to: domain::VehicleState,
        at: domain::Timestamp,
    ) -> Result<bool, domain::ports::StoreError> {
        let moved =
            query("UPDATE vehicles SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2")
                .bind(vehicle_id.as_uuid())
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(domain::time::to_storage_precision(at))
                .execute(&mut *tx)
                .await?;
        Ok(moved == 1)
    }

    /// Moves a vehicle from `from` to `to` and returns when its previous offer or
    /// job ended, in one statement; `None` when the vehicle was not in `from`. A
    /// claim is stamped no earlier than that end: the caller's clock was read before
    /// the locks were taken, and a vehicle cannot be offered before it was free.
    pub(crate) async fn claim_vehicle(
        tx: &mut B::Tx<'_>,
        vehicle_id: domain::VehicleId,
        from: domain::VehicleState,
        to: domain::VehicleState,
        at: domain::Timestamp,
    ) -> Result<Option<Option<domain::Timestamp>>, domain::ports::StoreError> {
        let row: Option<(Option<chrono::DateTime<chrono::Utc>>,)> = query(
            "UPDATE vehicles SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2 \
             RETURNING (SELECT MAX(COALESCE(released_at, answered_at)) FROM offers WHERE vehicle_id = $1)",
        )
        .bind(vehicle_id.as_uuid())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(domain::time::to_storage_precision(at))
        .fetch_optional(&mut *tx)
        .await?;
        Ok(row.map(|(free_since,)| free_since))
    }

    /// Claims the offer's vehicle (`available → offered`) and returns the offer's
    /// times: `sent_at` no earlier than the vehicle was free, and the answer window
    /// the provider is promised after it. `None`, with nothing written, when the
    /// vehicle is no longer available.
    pub(crate) async fn claim_for_offer(
        tx: &mut B::Tx<'_>,
        offer: &domain::ports::NewOffer,
    ) -> Result<Option<(domain::Timestamp, domain::Timestamp)>, domain::ports::StoreError> {
        let mut sent_at = domain::time::to_storage_precision(offer.sent_at);
        let mut expires_at = domain::time::to_storage_precision(offer.expires_at);
        let Some(free_since) = Self::claim_vehicle(
            tx,
            offer.vehicle_id,
            domain::VehicleState::Available,
            domain::VehicleState::Offered,
            sent_at,
        )
        .await?
        else {
            return Ok(None);
        };
        if let Some(free_since) = free_since
            && free_since > sent_at
        {
            // Keep the answer window the provider was promised.
            expires_at += free_since - sent_at;
            sent_at = free_since;
        }
        Ok(Some((sent_at, expires_at)))
    }

    /// Stores a pending offer whose vehicle is claimed, in the case's current round,
    /// and returns it with its `offer_sent` event (not appended yet).
    pub(crate) async fn store_offer(
        tx: &mut B::Tx<'_>,
        offer: &domain::ports::NewOffer,
        (sent_at, expires_at): (domain::Timestamp, domain::Timestamp),
    ) -> Result<(domain::Offer, domain::NewEvent), domain::ports::StoreError> {
        let sql = format!(
            "INSERT INTO offers (id, case_id, vehicle_id, provider_id, state, round, attempt, eta_s, distance_m, \
             sent_at, expires_at) \
             VALUES ($1, $2, $3, $4, 'pending', (SELECT dispatch_round FROM cases WHERE id = $2), $5, $6, $7, $8, $9) \
             RETURNING {}",
            crate::rows::OFFER_COLUMNS
        );
        let stored: crate::rows::OfferRow = query(sql)
            .bind(offer.id.as_uuid())
            .bind(offer.case_id.as_uuid())
            .bind(offer.vehicle_id.as_uuid())
            .bind(offer.provider_id.as_uuid())
            .bind(i32::try_from(offer.attempt).unwrap_or(i32::MAX))
            .bind(i32::try_from(offer.eta_s).unwrap_or(i32::MAX))
            .bind(offer.distance_m)
            .bind(sent_at)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?;
        let sent = crate::rows::offer_sent_event(offer, sent_at, expires_at);
        Ok((stored.try_into()?, sent))
    }

    /// Claims the offer's vehicle (`available → offered`) and stores the offer with
    /// `ranking` and its `offer_sent` event. `None`, with nothing written, when the
    /// vehicle is no longer available. The caller holds the case, `dispatching`.
    pub(crate) async fn offer_in_tx(
        tx: &mut B::Tx<'_>,
        offer: &domain::ports::NewOffer,
        ranking: &domain::NewEvent,
    ) -> Result<Option<domain::Offer>, domain::ports::StoreError> {
        let Some(times) = Self::claim_for_offer(tx, offer).await? else {
            return Ok(None);
        };
        let (stored, sent) = Self::store_offer(tx, offer, times).await?;
        Self::append_in_tx(tx, offer.case_id, ranking.clone()).await?;
        Self::append_in_tx(tx, offer.case_id, sent).await?;
        Ok(Some(stored))
    }

    /// Withdraws the case's pending offer, if any, freeing its vehicle.
    pub(crate) async fn withdraw_pending(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        actor: &domain::Actor,
        at: domain::Timestamp,
        reason: &str,
        released: &mut domain::ports::Released,
    ) -> Result<(), domain::ports::StoreError> {
        let ended = Ended {
            sql: "UPDATE offers SET state = 'withdrawn', answered_at = $2 WHERE case_id = $1 AND state = 'pending'",
            vehicle_was: domain::VehicleState::Offered,
            event: domain::EventKind::OfferWithdrawn,
        };
        Self::end_offers(tx, case_id, ended, actor, at, reason, released).await
    }

    /// Ends the case's job, if any, freeing its vehicle.
    pub(crate) async fn release_job(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        actor: &domain::Actor,
        at: domain::Timestamp,
        reason: &str,
        released: &mut domain::ports::Released,
    ) -> Result<(), domain::ports::StoreError> {
        let ended = Ended {
            sql: "UPDATE offers SET released_at = $2 WHERE case_id = $1 AND state = 'accepted' AND released_at IS NULL",
            vehicle_was: domain::VehicleState::Busy,
            event: domain::EventKind::VehicleReleased,
        };
        Self::end_offers(tx, case_id, ended, actor, at, reason, released).await
    }

    /// Ends the offers `ended.sql` updates, freeing each one's vehicle (from
    /// `ended.vehicle_was` to available) and recording `ended.event` for it.
    #[allow(clippy::too_many_arguments)]
    async fn end_offers(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        ended: Ended,
        actor: &domain::Actor,
        at: domain::Timestamp,
        reason: &str,
        released: &mut domain::ports::Released,
    ) -> Result<(), domain::ports::StoreError> {
        let sql = format!("{} RETURNING {}", ended.sql, crate::rows::OFFER_COLUMNS);
        let rows: Vec<crate::rows::OfferRow> = query(sql)
            .bind(case_id.as_uuid())
            .bind(domain::time::to_storage_precision(at))
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            let offer: domain::Offer = row.try_into()?;
            let freed = Self::move_vehicle(
                tx,
                offer.vehicle_id,
                ended.vehicle_was,
                domain::VehicleState::Available,
                at,
            )
            .await?;
            if freed {
                released.vehicles.push(offer.vehicle_id);
            }
            Self::append_in_tx(
                tx,
                case_id,
                domain::NewEvent::new(
                    ended.event,
                    actor.clone(),
                    at,
                    serde_json::json!({"offer_id": offer.id, "vehicle_id": offer.vehicle_id, "provider_id": offer.provider_id, "reason": reason}),
                ),
            )
            .await?;
            released.offers.push(offer);
        }
        Ok(())
    }

    /// Resolves the case's live alerts of `kind` (their condition cleared).
    pub(crate) async fn resolve_alerts(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        kind: domain::AlertKind,
        at: domain::Timestamp,
        reason: &str,
    ) -> Result<(), domain::ports::StoreError> {
        let resolved: Vec<(uuid::Uuid,)> = query(
            "UPDATE alerts SET state = 'resolved', resolved_by = 'system', resolved_at = $3, updated_at = $3 \
             WHERE case_id = $1 AND kind = $2 AND state <> 'resolved' RETURNING id",
        )
        .bind(case_id.as_uuid())
        .bind(kind.as_str())
        .bind(domain::time::to_storage_precision(at))
        .fetch_all(&mut *tx)
        .await?;
        for (alert_id,) in resolved {
            Self::append_in_tx(
                tx,
                case_id,
                domain::NewEvent::new(
                    domain::EventKind::AlertResolved,
                    domain::Actor::System,
                    at,
                    serde_json::json!({"alert_id": alert_id, "kind": kind, "reason": reason}),
                ),
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn fetch_offer(
        executor: impl Conn,
        id: domain::OfferId,
    ) -> Result<Option<domain::Offer>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM offers WHERE id = $1",
            crate::rows::OFFER_COLUMNS
        );
        let row: Option<crate::rows::OfferRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_optional(executor)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Vehicles with their devices, from rows selected by `where_sql` (binding $1).
    pub(crate) async fn vehicles_where(
        &self,
        where_sql: &str,
        bind: Option<uuid::Uuid>,
    ) -> Result<Vec<domain::Vehicle>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM {} {where_sql} ORDER BY vehicles.provider_id, vehicles.external_id",
            crate::rows::VEHICLE_COLUMNS,
            crate::rows::VEHICLES_WITH_POSITIONS,
        );
        let mut query = query(sql);
        if let Some(value) = bind {
            query = query.bind(value);
        }
        let rows: Vec<crate::rows::VehicleRow> = query.fetch_all(self.reader()).await?;
        let device_sql = format!(
            "SELECT d.vehicle_id, d.protocol, d.device_id FROM vehicle_devices d \
             JOIN vehicles ON vehicles.id = d.vehicle_id {where_sql}"
        );
        let mut device_query = crate::sql::query(device_sql);
        if let Some(value) = bind {
            device_query = device_query.bind(value);
        }
        let device_rows: Vec<crate::rows::DeviceRow> =
            device_query.fetch_all(self.reader()).await?;
        let mut devices: std::collections::HashMap<uuid::Uuid, Vec<domain::DeviceBinding>> =
            std::collections::HashMap::new();
        for row in device_rows {
            let vehicle_id = row.vehicle_id;
            devices
                .entry(vehicle_id)
                .or_default()
                .push(row.into_binding()?);
        }
        rows.into_iter()
            .map(|row| {
                let mut bindings = devices.remove(&row.id).unwrap_or_default();
                bindings.sort_by(|a, b| (a.protocol, &a.id).cmp(&(b.protocol, &b.id)));
                row.into_vehicle(bindings)
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl<B: Backend> domain::ports::FleetStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %provider_id, external_id = external_id))]
    async fn register_vehicle(
        &self,
        provider_id: domain::ProviderId,
        external_id: &str,
        registration: &domain::VehicleRegistration,
        at: domain::Timestamp,
    ) -> Result<domain::ports::Registered, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let existing: Option<(uuid::Uuid, String)> =
            query("SELECT id, state FROM vehicles WHERE provider_id = $1 AND external_id = $2")
                .bind(provider_id.as_uuid())
                .bind(external_id)
                .fetch_optional(&mut tx)
                .await?;
        let capabilities: Vec<&str> = registration
            .capabilities
            .iter()
            .map(|c| c.as_str())
            .collect();
        let (vehicle_id, created) = match existing {
            Some((id, state)) => {
                let current: domain::VehicleState = state
                    .parse()
                    .map_err(|_| crate::error::corrupt("vehicle state", &state))?;
                let wanted = registration.state.unwrap_or(current);
                let server_managed = matches!(
                    current,
                    domain::VehicleState::Offered | domain::VehicleState::Busy
                );
                if server_managed && wanted != current {
                    return Err(domain::ports::StoreError::Conflict(format!(
                        "the vehicle is `{current}` (it holds an offer or a job); its state cannot be changed now"
                    )));
                }
                query(
                    "UPDATE vehicles SET plate = $2, capabilities = $3, state = $4, updated_at = $5, driver_phone = $6 WHERE id = $1",
                )
                .bind(id)
                .bind(&registration.plate)
                .bind(sqlx::types::Json(&capabilities))
                .bind(wanted.as_str())
                .bind(at)
                .bind(&registration.driver_phone)
                .execute(&mut tx)
                .await?;
                query("DELETE FROM vehicle_devices WHERE vehicle_id = $1")
                    .bind(id)
                    .execute(&mut tx)
                    .await?;
                (id, false)
            }
            None => {
                let id = uuid::Uuid::now_v7();
                query(
                    "INSERT INTO vehicles (id, provider_id, external_id, plate, capabilities, state, created_at, updated_at, driver_phone) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
                )
                .bind(id)
                .bind(provider_id.as_uuid())
                .bind(external_id)
                .bind(&registration.plate)
                .bind(sqlx::types::Json(&capabilities))
                .bind(registration.state.unwrap_or(domain::VehicleState::Offline).as_str())
                .bind(at)
                .bind(&registration.driver_phone)
                .execute(&mut tx)
                .await?;
                (id, true)
            }
        };
        for device in &registration.devices {
            query(
                "INSERT INTO vehicle_devices (protocol, device_id, vehicle_id) VALUES ($1, $2, $3)",
            )
            .bind(device.protocol.as_str())
            .bind(&device.id)
            .bind(vehicle_id)
            .execute(&mut tx)
            .await
            .map_err(|error| match error {
                domain::ports::StoreError::Conflict(_) => {
                    domain::ports::StoreError::Conflict(format!(
                        "device {}:{} is bound to another vehicle",
                        device.protocol, device.id
                    ))
                }
                other => other,
            })?;
        }
        tx.commit().await?;
        let vehicle = self
            .vehicles_where("WHERE vehicles.id = $1", Some(vehicle_id))
            .await?
            .pop()
            .ok_or(domain::ports::StoreError::NotFound)?;
        Ok(domain::ports::Registered { vehicle, created })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, vehicle_id = %id))]
    async fn get_vehicle(
        &self,
        id: domain::VehicleId,
    ) -> Result<Option<domain::Vehicle>, domain::ports::StoreError> {
        Ok(self
            .vehicles_where("WHERE vehicles.id = $1", Some(id.as_uuid()))
            .await?
            .pop())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %provider_id, external_id = external_id))]
    async fn find_vehicle(
        &self,
        provider_id: domain::ProviderId,
        external_id: &str,
    ) -> Result<Option<domain::Vehicle>, domain::ports::StoreError> {
        let id: Option<(uuid::Uuid,)> =
            query("SELECT id FROM vehicles WHERE provider_id = $1 AND external_id = $2")
                .bind(provider_id.as_uuid())
                .bind(external_id)
                .fetch_optional(self.reader())
                .await?;
        match id {
            Some((id,)) => self.get_vehicle(id.into()).await,
            None => Ok(None),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn list_vehicles(&self) -> Result<Vec<domain::Vehicle>, domain::ports::StoreError> {
        self.vehicles_where("", None).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %provider_id))]
    async fn list_provider_vehicles(
        &self,
        provider_id: domain::ProviderId,
    ) -> Result<Vec<domain::Vehicle>, domain::ports::StoreError> {
        self.vehicles_where(
            "WHERE vehicles.provider_id = $1",
            Some(provider_id.as_uuid()),
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn vehicle_by_device(
        &self,
        protocol: domain::DeviceProtocol,
        device_id: &str,
    ) -> Result<Option<domain::Vehicle>, domain::ports::StoreError> {
        let id: Option<(uuid::Uuid,)> =
            query("SELECT vehicle_id FROM vehicle_devices WHERE protocol = $1 AND device_id = $2")
                .bind(protocol.as_str())
                .bind(device_id)
                .fetch_optional(self.reader())
                .await?;
        match id {
            Some((id,)) => self.get_vehicle(id.into()).await,
            None => Ok(None),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn save_last_fixes(
        &self,
        fixes: &[(domain::VehicleId, domain::Fix)],
    ) -> Result<u64, domain::ports::StoreError> {
        if fixes.is_empty() {
            return Ok(0);
        }
        Backend::save_last_fixes(&self.0, fixes).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn list_providers(&self) -> Result<Vec<domain::Provider>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM providers ORDER BY id",
            crate::rows::PROVIDER_COLUMNS
        );
        let rows: Vec<crate::rows::ProviderRow> = query(sql).fetch_all(self.reader()).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[async_trait::async_trait]
impl<B: Backend> domain::ports::DispatchStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %offer.case_id, offer_id = %offer.id, vehicle_id = %offer.vehicle_id, provider_id = %offer.provider_id))]
    async fn create_offer(
        &self,
        offer: &domain::ports::NewOffer,
        ranking: &domain::NewEvent,
    ) -> Result<domain::Offer, domain::ports::StoreError> {
        let mut tx = self.begin_urgent_write().await?;
        let status = Self::lock_case(&mut tx, offer.case_id, offer.sent_at).await?;
        if status != domain::CaseStatus::Dispatching {
            return Err(domain::ports::StoreError::Conflict(format!(
                "case is `{status}`, not dispatching"
            )));
        }
        let stored = Self::offer_in_tx(&mut tx, offer, ranking)
            .await?
            .ok_or_else(|| {
                domain::ports::StoreError::Conflict("vehicle is no longer available".into())
            })?;
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, offer_id = %offer_id, provider_id = %provider_id))]
    async fn accept_offer(
        &self,
        offer_id: domain::OfferId,
        provider_id: domain::ProviderId,
        at: domain::Timestamp,
        provider_eta_s: Option<u32>,
    ) -> Result<(domain::Offer, domain::Case), domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let offer = Self::fetch_offer(self.reader(), offer_id)
            .await?
            .filter(|offer| offer.provider_id == provider_id)
            .ok_or(domain::ports::StoreError::NotFound)?;
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, offer.case_id, at).await?;
        let accepted = query(
            "UPDATE offers SET state = 'accepted', answered_at = $2, provider_eta_s = $3 \
             WHERE id = $1 AND state = 'pending' AND expires_at > $2",
        )
        .bind(offer_id.as_uuid())
        .bind(at)
        .bind(provider_eta_s.map(|eta| i32::try_from(eta).unwrap_or(i32::MAX)))
        .execute(&mut tx)
        .await?;
        if accepted == 0 {
            let current = Self::fetch_offer(&mut tx, offer_id)
                .await?
                .ok_or(domain::ports::StoreError::NotFound)?;
            let why = if current.state == domain::OfferState::Pending {
                "the offer expired".to_owned()
            } else {
                format!("the offer is already {}", current.state)
            };
            return Err(domain::ports::StoreError::Conflict(why));
        }
        if !Self::move_vehicle(
            &mut tx,
            offer.vehicle_id,
            domain::VehicleState::Offered,
            domain::VehicleState::Busy,
            at,
        )
        .await?
        {
            return Err(domain::ports::StoreError::Conflict(
                "vehicle is not held by this offer".into(),
            ));
        }
        let eta_s = provider_eta_s.unwrap_or(offer.eta_s);
        let promised = at + chrono::Duration::seconds(i64::from(eta_s));
        let actor = domain::Actor::Provider(provider_id);
        Self::append_in_tx(
            &mut tx,
            offer.case_id,
            domain::NewEvent::new(
                domain::EventKind::OfferAccepted,
                actor.clone(),
                at,
                serde_json::json!({"offer_id": offer.id, "vehicle_id": offer.vehicle_id, "provider_id": provider_id,
                                   "quoted_eta_s": offer.eta_s, "provider_eta_s": provider_eta_s}),
            ),
        )
        .await?;
        Self::change_status(
            &mut tx,
            offer.case_id,
            status,
            domain::CaseStatus::Assigned,
            Some(promised),
            &actor,
            at,
            "offer_accepted",
        )
        .await?;
        Self::resolve_alerts(
            &mut tx,
            offer.case_id,
            domain::AlertKind::NoVehicle,
            at,
            "vehicle assigned",
        )
        .await?;
        let offer = Self::fetch_offer(&mut tx, offer_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        let case = Self::fetch_case(&mut tx, offer.case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok((offer, case))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, offer_id = %offer_id, provider_id = %provider_id))]
    async fn decline_offer(
        &self,
        offer_id: domain::OfferId,
        provider_id: domain::ProviderId,
        reason: domain::DeclineReason,
        at: domain::Timestamp,
    ) -> Result<domain::Offer, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let offer = Self::fetch_offer(self.reader(), offer_id)
            .await?
            .filter(|offer| offer.provider_id == provider_id)
            .ok_or(domain::ports::StoreError::NotFound)?;
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, offer.case_id, at).await?;
        let declined = query(
            "UPDATE offers SET state = 'declined', answered_at = $2, decline_reason = $3 \
             WHERE id = $1 AND state = 'pending' AND expires_at > $2",
        )
        .bind(offer_id.as_uuid())
        .bind(at)
        .bind(reason.as_str())
        .execute(&mut tx)
        .await?;
        if declined == 0 {
            let current = Self::fetch_offer(&mut tx, offer_id)
                .await?
                .ok_or(domain::ports::StoreError::NotFound)?;
            let why = if current.state == domain::OfferState::Pending {
                "the offer expired".to_owned()
            } else {
                format!("the offer is already {}", current.state)
            };
            return Err(domain::ports::StoreError::Conflict(why));
        }
        Self::move_vehicle(
            &mut tx,
            offer.vehicle_id,
            domain::VehicleState::Offered,
            domain::VehicleState::Available,
            at,
        )
        .await?;
        Self::append_in_tx(
            &mut tx,
            offer.case_id,
            domain::NewEvent::new(
                domain::EventKind::OfferDeclined,
                domain::Actor::Provider(provider_id),
                at,
                serde_json::json!({"offer_id": offer.id, "vehicle_id": offer.vehicle_id, "provider_id": provider_id, "reason": reason}),
            ),
        )
        .await?;
        let offer = Self::fetch_offer(&mut tx, offer_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(offer)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn expire_offers(
        &self,
        now: domain::Timestamp,
        limit: u32,
    ) -> Result<Vec<domain::Offer>, domain::ports::StoreError> {
        let now = domain::time::to_storage_precision(now);
        let mut tx = self.begin_write().await?;
        let due: Vec<(uuid::Uuid, uuid::Uuid)> = query(B::DUE_OFFERS_SQL)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut tx)
            .await?;
        let mut expired = Vec::with_capacity(due.len());
        for (offer_id, case_id) in due {
            Self::lock_case(&mut tx, case_id.into(), now).await?;
            let sql = format!(
                "UPDATE offers SET state = 'expired', answered_at = $2 \
                 WHERE id = $1 AND state = 'pending' AND expires_at <= $2 RETURNING {}",
                crate::rows::OFFER_COLUMNS
            );
            let row: Option<crate::rows::OfferRow> = query(sql)
                .bind(offer_id)
                .bind(now)
                .fetch_optional(&mut tx)
                .await?;
            let Some(row) = row else { continue };
            let offer: domain::Offer = row.try_into()?;
            Self::move_vehicle(
                &mut tx,
                offer.vehicle_id,
                domain::VehicleState::Offered,
                domain::VehicleState::Available,
                now,
            )
            .await?;
            Self::append_in_tx(
                &mut tx,
                offer.case_id,
                domain::NewEvent::new(
                    domain::EventKind::OfferExpired,
                    domain::Actor::System,
                    now,
                    serde_json::json!({"offer_id": offer.id, "vehicle_id": offer.vehicle_id, "provider_id": offer.provider_id,
                                       "expires_at": offer.expires_at}),
                ),
            )
            .await?;
            expired.push(offer);
        }
        tx.commit().await?;
        Ok(expired)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, offer_id = %id))]
    async fn get_offer(
        &self,
        id: domain::OfferId,
    ) -> Result<Option<domain::Offer>, domain::ports::StoreError> {
        Self::fetch_offer(self.reader(), id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, provider_id = %provider_id))]
    async fn pending_offers(
        &self,
        provider_id: domain::ProviderId,
    ) -> Result<Vec<domain::Offer>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM offers WHERE provider_id = $1 AND state = 'pending' ORDER BY sent_at",
            crate::rows::OFFER_COLUMNS
        );
        let rows: Vec<crate::rows::OfferRow> = query(sql)
            .bind(provider_id.as_uuid())
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn case_offers(
        &self,
        case_id: domain::CaseId,
    ) -> Result<Vec<domain::Offer>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM offers WHERE case_id = $1 ORDER BY sent_at, id",
            crate::rows::OFFER_COLUMNS
        );
        let rows: Vec<crate::rows::OfferRow> = query(sql)
            .bind(case_id.as_uuid())
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn dispatch_state(
        &self,
        case_id: domain::CaseId,
    ) -> Result<Option<domain::ports::DispatchState>, domain::ports::StoreError> {
        let Some(case) = Self::fetch_case(self.reader(), case_id).await? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM offers WHERE case_id = $1 \
             AND round = (SELECT dispatch_round FROM cases WHERE id = $1) ORDER BY sent_at, id",
            crate::rows::OFFER_COLUMNS
        );
        let rows: Vec<crate::rows::OfferRow> = query(sql)
            .bind(case_id.as_uuid())
            .fetch_all(self.reader())
            .await?;
        let offers_in_round = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?;
        Ok(Some(domain::ports::DispatchState {
            case,
            offers_in_round,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn active_job(
        &self,
        case_id: domain::CaseId,
    ) -> Result<Option<domain::Offer>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM offers WHERE case_id = $1 AND state = 'accepted' AND released_at IS NULL",
            crate::rows::OFFER_COLUMNS
        );
        let row: Option<crate::rows::OfferRow> = query(sql)
            .bind(case_id.as_uuid())
            .fetch_optional(self.reader())
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id, alert_id = %alert.id))]
    async fn escalate_case(
        &self,
        case_id: domain::CaseId,
        at: domain::Timestamp,
        alert: &domain::ports::NewAlert,
    ) -> Result<domain::Case, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, case_id, at).await?;
        if status != domain::CaseStatus::Dispatching {
            return Err(domain::ports::StoreError::Conflict(format!(
                "case is `{status}`, not dispatching"
            )));
        }
        let mut released = domain::ports::Released::default();
        Self::withdraw_pending(
            &mut tx,
            case_id,
            &domain::Actor::System,
            at,
            "escalated",
            &mut released,
        )
        .await?;
        Self::change_status(
            &mut tx,
            case_id,
            status,
            domain::CaseStatus::Escalated,
            None,
            &domain::Actor::System,
            at,
            &alert.message,
        )
        .await?;
        let inserted = query(
            "INSERT INTO alerts (id, case_id, kind, severity, state, raised_at, predicted_breach, message, updated_at) \
             VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $5) \
             ON CONFLICT (case_id, kind) WHERE state <> 'resolved' DO NOTHING",
        )
        .bind(alert.id.as_uuid())
        .bind(case_id.as_uuid())
        .bind(alert.kind.as_str())
        .bind(alert.severity.as_str())
        .bind(at)
        .bind(alert.predicted_breach.map(domain::time::to_storage_precision))
        .bind(&alert.message)
        .execute(&mut tx)
        .await?;
        if inserted == 1 {
            Self::append_in_tx(
                &mut tx,
                case_id,
                domain::NewEvent::new(
                    domain::EventKind::AlertRaised,
                    domain::Actor::System,
                    at,
                    serde_json::json!({"alert_id": alert.id, "kind": alert.kind, "severity": alert.severity, "message": alert.message}),
                ),
            )
            .await?;
        }
        let case = Self::fetch_case(&mut tx, case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(case)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id, offer_id = %assignment.offer_id, vehicle_id = %assignment.vehicle_id))]
    async fn assign_vehicle(
        &self,
        case_id: domain::CaseId,
        assignment: &domain::ports::ManualAssignment,
        actor: &domain::Actor,
        at: domain::Timestamp,
    ) -> Result<(domain::Case, domain::Offer, domain::ports::Released), domain::ports::StoreError>
    {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, case_id, at).await?;
        if !matches!(
            status,
            domain::CaseStatus::Dispatching | domain::CaseStatus::Escalated
        ) {
            return Err(domain::ports::StoreError::IllegalTransition(
                domain::IllegalTransition {
                    from: status,
                    to: domain::CaseStatus::Assigned,
                },
            ));
        }
        let mut released = domain::ports::Released::default();
        Self::withdraw_pending(
            &mut tx,
            case_id,
            actor,
            at,
            "manual_assignment",
            &mut released,
        )
        .await?;
        let provider: Option<(uuid::Uuid,)> =
            query("SELECT provider_id FROM vehicles WHERE id = $1")
                .bind(assignment.vehicle_id.as_uuid())
                .fetch_optional(&mut tx)
                .await?;
        let (provider_id,) = provider.ok_or(domain::ports::StoreError::NotFound)?;
        let Some(free_since) = Self::claim_vehicle(
            &mut tx,
            assignment.vehicle_id,
            domain::VehicleState::Available,
            domain::VehicleState::Busy,
            at,
        )
        .await?
        else {
            return Err(domain::ports::StoreError::Conflict(
                "vehicle is not available".into(),
            ));
        };
        let job_start = match free_since {
            Some(free_since) if free_since > at => free_since,
            _ => at,
        };
        // The vehicle freed by the withdrawal is busy again if it is the one assigned.
        released
            .vehicles
            .retain(|vehicle| *vehicle != assignment.vehicle_id);
        query(
            "INSERT INTO offers (id, case_id, vehicle_id, provider_id, state, round, attempt, eta_s, distance_m, \
             sent_at, expires_at, answered_at, assigned_by) \
             VALUES ($1, $2, $3, $4, 'accepted', (SELECT dispatch_round FROM cases WHERE id = $2), \
             (SELECT COUNT(*) + 1 FROM offers WHERE case_id = $2), $5, $6, $7, $7, $7, $8)",
        )
        .bind(assignment.offer_id.as_uuid())
        .bind(case_id.as_uuid())
        .bind(assignment.vehicle_id.as_uuid())
        .bind(provider_id)
        .bind(i32::try_from(assignment.eta_s).unwrap_or(i32::MAX))
        .bind(assignment.distance_m)
        .bind(job_start)
        .bind(actor.to_string())
        .execute(&mut tx)
        .await?;
        let promised = at + chrono::Duration::seconds(i64::from(assignment.eta_s));
        Self::append_in_tx(
            &mut tx,
            case_id,
            domain::NewEvent::new(
                domain::EventKind::VehicleAssigned,
                actor.clone(),
                at,
                serde_json::json!({"offer_id": assignment.offer_id, "vehicle_id": assignment.vehicle_id,
                                   "provider_id": provider_id, "eta_s": assignment.eta_s,
                                   "distance_m": assignment.distance_m.round(), "manual": true}),
            ),
        )
        .await?;
        Self::change_status(
            &mut tx,
            case_id,
            status,
            domain::CaseStatus::Assigned,
            Some(promised),
            actor,
            at,
            "manual_assignment",
        )
        .await?;
        Self::resolve_alerts(
            &mut tx,
            case_id,
            domain::AlertKind::NoVehicle,
            at,
            "vehicle assigned",
        )
        .await?;
        let offer = Self::fetch_offer(&mut tx, assignment.offer_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        let case = Self::fetch_case(&mut tx, case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok((case, offer, released))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn redispatch_case(
        &self,
        case_id: domain::CaseId,
        actor: &domain::Actor,
        at: domain::Timestamp,
    ) -> Result<domain::Case, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, case_id, at).await?;
        if status != domain::CaseStatus::Escalated {
            return Err(domain::ports::StoreError::IllegalTransition(
                domain::IllegalTransition {
                    from: status,
                    to: domain::CaseStatus::Dispatching,
                },
            ));
        }
        Self::change_status(
            &mut tx,
            case_id,
            status,
            domain::CaseStatus::Dispatching,
            None,
            actor,
            at,
            "redispatch",
        )
        .await?;
        let case = Self::fetch_case(&mut tx, case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(case)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn cancel_case(
        &self,
        case_id: domain::CaseId,
        actor: &domain::Actor,
        at: domain::Timestamp,
        reason: &str,
    ) -> Result<(domain::Case, domain::ports::Released), domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, case_id, at).await?;
        status.transition(domain::CaseStatus::Cancelled)?;
        let mut released = domain::ports::Released::default();
        Self::withdraw_pending(&mut tx, case_id, actor, at, "case_cancelled", &mut released)
            .await?;
        Self::release_job(&mut tx, case_id, actor, at, "case_cancelled", &mut released).await?;
        Self::abandon_diagnosis(&mut tx, case_id, at).await?;
        Self::change_status(
            &mut tx,
            case_id,
            status,
            domain::CaseStatus::Cancelled,
            None,
            actor,
            at,
            reason,
        )
        .await?;
        let case = Self::fetch_case(&mut tx, case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok((case, released))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id, provider_id = %provider_id))]
    async fn report_job_status(
        &self,
        case_id: domain::CaseId,
        provider_id: domain::ProviderId,
        to: domain::CaseStatus,
        at: domain::Timestamp,
    ) -> Result<(domain::Case, domain::ports::Released), domain::ports::StoreError> {
        use domain::CaseStatus::*;
        if !matches!(to, EnRoute | OnScene | InService | Completed) {
            return Err(domain::ports::StoreError::Conflict(format!(
                "a provider cannot set `{to}`"
            )));
        }
        let at = domain::time::to_storage_precision(at);
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, case_id, at).await?;
        let job: Option<(uuid::Uuid, uuid::Uuid)> = query(
            "SELECT id, provider_id FROM offers WHERE case_id = $1 AND state = 'accepted' AND released_at IS NULL",
        )
        .bind(case_id.as_uuid())
        .fetch_optional(&mut tx)
        .await?;
        match job {
            Some((_, owner)) if owner == provider_id.as_uuid() => {}
            // Another provider's job, or none: this provider has no such job.
            _ => return Err(domain::ports::StoreError::NotFound),
        }
        let actor = domain::Actor::Provider(provider_id);
        Self::change_status(
            &mut tx,
            case_id,
            status,
            to,
            None,
            &actor,
            at,
            "provider_report",
        )
        .await?;
        if to == OnScene {
            query(
                "UPDATE offers SET arrived_at = $2, \
                 arrived_on_time = ($2 <= (SELECT promised_arrival FROM cases WHERE id = $1)) \
                 WHERE case_id = $1 AND state = 'accepted' AND released_at IS NULL",
            )
            .bind(case_id.as_uuid())
            .bind(at)
            .execute(&mut tx)
            .await?;
        }
        let mut released = domain::ports::Released::default();
        if to == Completed {
            Self::release_job(&mut tx, case_id, &actor, at, "job_completed", &mut released).await?;
            Self::release_phone_in_tx(&mut tx, case_id, at).await?;
        }
        let case = Self::fetch_case(&mut tx, case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok((case, released))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn cases_awaiting_offer(
        &self,
        before: domain::Timestamp,
        limit: u32,
    ) -> Result<Vec<domain::CaseId>, domain::ports::StoreError> {
        let rows: Vec<(uuid::Uuid,)> = query(
            "SELECT id FROM cases c WHERE status = 'dispatching' AND updated_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.case_id = c.id AND o.state = 'pending') \
             ORDER BY updated_at LIMIT $2",
        )
        .bind(domain::time::to_storage_precision(before))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.into()).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn cases_awaiting_triage(
        &self,
        before: domain::Timestamp,
        limit: u32,
    ) -> Result<Vec<domain::CaseId>, domain::ports::StoreError> {
        let rows: Vec<(uuid::Uuid,)> = query(
            "SELECT id FROM cases WHERE status = 'new' AND created_at < $1 ORDER BY created_at LIMIT $2",
        )
        .bind(domain::time::to_storage_precision(before))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.into()).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn provider_records(
        &self,
        since: domain::Timestamp,
    ) -> Result<Vec<domain::ports::ProviderRecord>, domain::ports::StoreError> {
        let rows: Vec<(uuid::Uuid, i64, i64, i64, i64)> = query(
            "SELECT provider_id, \
             SUM(CASE WHEN state IN ('accepted', 'declined', 'expired') AND assigned_by IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN state = 'accepted' AND assigned_by IS NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN arrived_at IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN arrived_on_time THEN 1 ELSE 0 END) \
             FROM offers WHERE sent_at >= $1 GROUP BY provider_id",
        )
        .bind(domain::time::to_storage_precision(since))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(provider_id, offers, accepted, arrivals, on_time)| {
                domain::ports::ProviderRecord {
                    provider_id: provider_id.into(),
                    offers: u64::try_from(offers).unwrap_or(0),
                    accepted: u64::try_from(accepted).unwrap_or(0),
                    arrivals: u64::try_from(arrivals).unwrap_or(0),
                    on_time: u64::try_from(on_time).unwrap_or(0),
                }
            })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn list_alerts(
        &self,
        state: Option<domain::AlertState>,
        limit: u32,
    ) -> Result<Vec<domain::Alert>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM alerts WHERE ($1 IS NULL OR state = $1) ORDER BY raised_at DESC, id DESC LIMIT $2",
            crate::rows::ALERT_COLUMNS
        );
        let rows: Vec<crate::rows::AlertRow> = query(sql)
            .bind(state.map(|state| state.as_str()))
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

/// How [`SqlStore::end_offers`] ends a case's offers: the update (`$1` the case, `$2` the
/// time) that selects and ends them, the state their vehicles leave, the event recorded.
struct Ended {
    sql: &'static str,
    vehicle_was: domain::VehicleState,
    event: domain::EventKind,
}
