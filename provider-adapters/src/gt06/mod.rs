//! GT06 / Concox binary protocol over TCP.
//!
//! - [`codec`]: framing, CRC-16/X.25, login, heartbeat, GPS-bearing messages, acks (pure).
//! - [`session`]: login gate and position acceptance (pure).
//! - [`listener`]: the TCP listener, [`serve_gt06`].

pub mod codec;
pub mod listener;
pub mod session;

pub use listener::{Gt06Config, serve_gt06};
pub use session::Gt06Session;
