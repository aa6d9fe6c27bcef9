//! Identifiers. Every id is a UUID v7, so ids sort by creation time and make good keyset
//! cursors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

uuid_id!(
    /// A rescue case.
    CaseId
);
uuid_id!(
    /// A contracted tow provider.
    ProviderId
);
uuid_id!(
    /// A console user: agent, expert or admin.
    UserId
);
uuid_id!(
    /// A rescue vehicle (the server's id; providers use their own ids for their trucks).
    VehicleId
);
uuid_id!(
    /// An offer of a case to a vehicle.
    OfferId
);
uuid_id!(
    /// A delay or safety alert.
    AlertId
);
uuid_id!(
    /// A remote-diagnosis ticket.
    TicketId
);
