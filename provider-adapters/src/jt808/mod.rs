//! JT/T 808 (GB/T-style Chinese standard for commercial vehicle terminals) over TCP.
//!
//! - [`codec`]: framing, escaping, header, check code, sub-packages, bodies, replies (pure).
//! - [`session`]: registration, authentication and position acceptance (pure).
//! - [`listener`]: the TCP listener, [`serve_jt808`].

pub mod codec;
pub mod listener;
pub mod session;
pub mod terminal;

pub use listener::{Jt808Config, serve_jt808};
pub use session::{AuthSecret, Jt808Session};
