//! What a provider is shown of an offer. The provider API (`GET /v1/provider/offers`)
//! and the offer webhooks show the same view, built here.

use domain::ports::{Store, StoreError};
use domain::{Case, CaseId, Offer, OfferId, RoadKind, Service};
use serde::{Deserialize, Serialize};

use crate::services::fleet_ingest::FleetRegistry;

/// Where the customer is, as a provider sees it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobLocation {
    /// Latitude, WGS-84.
    pub lat: f64,
    /// Longitude, WGS-84.
    pub lon: f64,
    /// Address or landmark.
    pub address: Option<String>,
    /// Road kind.
    pub road_kind: RoadKind,
}

impl From<&Case> for JobLocation {
    fn from(case: &Case) -> Self {
        JobLocation {
            lat: case.location.position.lat(),
            lon: case.location.position.lon(),
            address: case.location.address.clone(),
            road_kind: case.location.road_kind,
        }
    }
}

/// An offer as the provider sees it: enough to decide, no personal data yet.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferView {
    /// Offer id.
    pub id: OfferId,
    /// The case.
    pub case_id: CaseId,
    /// The provider's own id of the offered vehicle.
    pub vehicle_id: String,
    /// The job.
    pub service: Service,
    /// Where.
    pub location: JobLocation,
    /// The fault category.
    pub fault_category: domain::FaultCategory,
    /// Our estimate of the time to reach the customer, seconds.
    pub eta_s: u32,
    /// Great-circle distance, metres.
    pub distance_m: f64,
    /// Sent.
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// Answer before this.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Where the offer stands.
    pub state: domain::OfferState,
}

/// The provider's view of an offer. [`StoreError::NotFound`] when its case is gone.
pub async fn offer_view(
    store: &dyn Store,
    registry: &FleetRegistry,
    offer: &Offer,
) -> Result<OfferView, StoreError> {
    let case = store
        .get_case(offer.case_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let vehicle_id = match registry.meta(offer.vehicle_id) {
        Some(meta) => meta.external_id,
        None => store
            .get_vehicle(offer.vehicle_id)
            .await?
            .map(|vehicle| vehicle.vehicle_id)
            .unwrap_or_default(),
    };
    Ok(OfferView {
        id: offer.id,
        case_id: offer.case_id,
        vehicle_id,
        service: case.service,
        location: JobLocation::from(&case),
        fault_category: case.fault.category,
        eta_s: offer.eta_s,
        distance_m: offer.distance_m.round(),
        sent_at: offer.sent_at,
        expires_at: offer.expires_at,
        state: offer.state,
    })
}
