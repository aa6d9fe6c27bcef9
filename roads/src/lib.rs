//! The road network: a car profile, the routing graph built from an OpenStreetMap PBF
//! extract, contraction hierarchies, snapping, one-to-many ETAs and routes.
//!
//! Pure except for reading the extract and its prepared cache. Load a network once
//! ([`RoadNetwork::load`]), then ask it how long trucks take to reach a customer:
//!
//! ```no_run
//! use domain::LatLon;
//! use roads::{Origin, Profile, RoadNetwork};
//!
//! let network = RoadNetwork::load(
//!     "monaco.osm.pbf".as_ref(),
//!     &Profile::default(),
//!     Some("/var/cache/rescue".as_ref()),
//! )?;
//! let customer = LatLon::new(43.7384, 7.4246).expect("a valid position");
//! let trucks = [Origin::at(LatLon::new(43.7311, 7.4197).expect("a valid position"))];
//! for eta in network.etas_to(customer, &trucks) {
//!     match eta {
//!         Some(eta) => println!("{:.0} s over {:.0} m of road", eta.time_s, eta.distance_m),
//!         None => println!("off the network: use the straight line"),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ch;
pub mod geometry;
mod graph;
mod network;
pub mod osm;
pub mod profile;
pub mod reference;
pub mod synthetic;

use std::path::PathBuf;

pub use crate::graph::{BuildStats, Graph};
pub use crate::network::{NetworkStats, Origin, RoadEta, RoadNetwork, Route, Snap};
pub use crate::profile::Profile;

/// Why a road network or a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RoadError {
    /// The extract cannot be read or has nothing to drive on.
    #[error("road network {}: {reason}", file.display())]
    Network { file: PathBuf, reason: String },
    /// The profile file cannot be read or is not a valid profile.
    #[error("road profile {}: {reason}", file.display())]
    Profile { file: PathBuf, reason: String },
}
