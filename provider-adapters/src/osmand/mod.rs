//! OsmAnd HTTP protocol, as spoken by the Traccar Client apps.
//!
//! Only the pure [`parse`] lives here: the HTTP route (`GET`/`POST /osmand`) belongs to the
//! server, which passes the query string or body to [`parse_query`] / [`parse_json`],
//! resolves the device through [`crate::DeviceGateway::resolve_device`] (unknown device:
//! 404 is what the apps expect; a parse error: 400 with the error's message) and submits
//! the positions as live.

pub mod parse;

pub use parse::{OsmandError, parse_json, parse_query};
