//! The rescue dispatch server: the HTTP API over the domain and the storage ports, the
//! background loops, and the composition root that picks the concrete backends.
//!
//! [`app::Application`] is the whole server: `build` (bind, connect, migrate), `port`,
//! `run_until_stopped`. The binary (`dispatcher serve`) and the integration tests build it
//! the same way.

pub mod api;
pub mod app;
#[cfg(test)]
mod architecture;
pub mod bus;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod matching;
pub mod runtime;
pub mod security;
pub mod services;
pub mod stream;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
