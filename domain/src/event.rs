//! The case timeline: every change to a case is an event appended in the same transaction
//! as the change itself. Events are never updated or deleted; the timeline is the record
//! used in disputes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::account::Role;
use crate::error::FieldError;
use crate::ids::{CaseId, ProviderId, UserId};
use crate::time::Timestamp;

vocabulary! {
    /// What happened.
    pub enum EventKind: "event kind" {
        /// The case was created (data: channel, service, triage input).
        Created = "created",
        /// The triage decision and its reason.
        Triaged = "triaged",
        /// The status changed (data: from, to, reason).
        StatusChanged = "status_changed",
        /// An agent wrote a note.
        NoteAdded = "note_added",
        /// Candidates were ranked for an offer (data: the top candidates and their ETAs).
        CandidatesRanked = "candidates_ranked",
        /// An offer was sent to a vehicle.
        OfferSent = "offer_sent",
        /// The provider accepted the offer.
        OfferAccepted = "offer_accepted",
        /// The provider declined the offer (data: reason code).
        OfferDeclined = "offer_declined",
        /// Nobody answered the offer in time.
        OfferExpired = "offer_expired",
        /// The offer was withdrawn (case cancelled or reassigned).
        OfferWithdrawn = "offer_withdrawn",
        /// A vehicle was assigned (by acceptance or by an agent).
        VehicleAssigned = "vehicle_assigned",
        /// The vehicle was released from the case.
        VehicleReleased = "vehicle_released",
        /// A delay or safety alert was raised.
        AlertRaised = "alert_raised",
        /// An open alert became more urgent.
        AlertEscalated = "alert_escalated",
        /// An agent acknowledged an alert.
        AlertAcknowledged = "alert_acknowledged",
        /// An alert was resolved, by an agent or because its condition cleared.
        AlertResolved = "alert_resolved",
        /// The case joined the phone-expert queue.
        DiagnosisQueued = "diagnosis_queued",
        /// An expert claimed the ticket.
        DiagnosisClaimed = "diagnosis_claimed",
        /// The claim lapsed or was given back.
        DiagnosisReleased = "diagnosis_released",
        /// The expert solved it on the phone.
        DiagnosisSolved = "diagnosis_solved",
        /// The expert could not solve it; dispatch starts.
        DiagnosisEscalated = "diagnosis_escalated",
        /// A masked call was bridged.
        CallBridged = "call_bridged",
        /// The customer was sent an update.
        CustomerNotified = "customer_notified",
        /// A webhook delivery gave up after its retry budget.
        WebhookDeadLettered = "webhook_dead_lettered",
    }
}

/// Who caused an event. Written as text: `system`, `customer`, `app`, `admin` (the
/// bootstrap token), `agent:<user id>`, `expert:<user id>`, `admin:<user id>`,
/// `provider:<provider id>`, `device:<protocol>:<device id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The server itself (timers, rules, the matcher).
    System,
    /// The customer, through their case token.
    Customer,
    /// An unauthenticated app client creating a case.
    App,
    /// The bootstrap admin token.
    BootstrapAdmin,
    /// A console user.
    User {
        /// The user's role at the time.
        role: Role,
        /// The user.
        id: UserId,
    },
    /// A provider, through its API key.
    Provider(ProviderId),
    /// A GPS device.
    Device {
        /// `jt808`, `gt06`, `osmand`.
        protocol: String,
        /// The device's external id.
        device_id: String,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Customer => f.write_str("customer"),
            Actor::App => f.write_str("app"),
            Actor::BootstrapAdmin => f.write_str("admin"),
            Actor::User { role, id } => write!(f, "{role}:{id}"),
            Actor::Provider(id) => write!(f, "provider:{id}"),
            Actor::Device {
                protocol,
                device_id,
            } => write!(f, "device:{protocol}:{device_id}"),
        }
    }
}

impl FromStr for Actor {
    type Err = FieldError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || FieldError::new("actor", format!("unknown actor `{text}`"));
        match text {
            "system" => return Ok(Actor::System),
            "customer" => return Ok(Actor::Customer),
            "app" => return Ok(Actor::App),
            "admin" => return Ok(Actor::BootstrapAdmin),
            _ => {}
        }
        let (prefix, rest) = text.split_once(':').ok_or_else(invalid)?;
        match prefix {
            "provider" => Ok(Actor::Provider(rest.parse().map_err(|_| invalid())?)),
            "device" => {
                let (protocol, device_id) = rest.split_once(':').ok_or_else(invalid)?;
                Ok(Actor::Device {
                    protocol: protocol.to_owned(),
                    device_id: device_id.to_owned(),
                })
            }
            role => Ok(Actor::User {
                role: role.parse().map_err(|_| invalid())?,
                id: rest.parse().map_err(|_| invalid())?,
            }),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|error: FieldError| serde::de::Error::custom(error.message))
    }
}

/// An event about to be appended; the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub kind: EventKind,
    /// Who did it.
    pub actor: Actor,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Details, a JSON object.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event with details.
    pub fn new(kind: EventKind, actor: Actor, at: Timestamp, data: serde_json::Value) -> Self {
        Self {
            kind,
            actor,
            at,
            data,
        }
    }

    /// The event as stored: the row id and sequence number the store gave it, and its
    /// time at storage precision (`at`).
    pub fn stored(self, id: i64, case_id: CaseId, seq: i64, at: Timestamp) -> Event {
        Event {
            id,
            case_id,
            seq,
            at,
            kind: self.kind,
            actor: self.actor,
            data: self.data,
        }
    }
}

/// An event in a case's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Position in the whole event log, increasing; used as the SSE event id.
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// Position in the case's timeline, 1, 2, 3 … without gaps.
    pub seq: i64,
    /// When it happened.
    pub at: chrono::DateTime<chrono::Utc>,
    /// What happened.
    pub kind: EventKind,
    /// Who did it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "agent:0192f6c2-3b1e-7c3a-9d7e-2f1a6b1c9e01"))]
    pub actor: Actor,
    /// Details.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_through_text() {
        let actors = [
            Actor::System,
            Actor::Customer,
            Actor::App,
            Actor::BootstrapAdmin,
            Actor::User {
                role: Role::Agent,
                id: UserId::new_v7(),
            },
            Actor::Provider(ProviderId::new_v7()),
            Actor::Device {
                protocol: "jt808".into(),
                device_id: "013912345678".into(),
            },
        ];
        for actor in actors {
            assert_eq!(actor.to_string().parse::<Actor>().unwrap(), actor);
        }
    }

    #[test]
    fn unknown_actor_text_is_refused() {
        assert!("robot:1".parse::<Actor>().is_err());
        assert!("agent:not-a-uuid".parse::<Actor>().is_err());
        assert!("nobody".parse::<Actor>().is_err());
    }
}
