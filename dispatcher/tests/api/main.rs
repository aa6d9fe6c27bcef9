//! API tests: the real server on port 0, real sockets, a fresh SQLite file or PostgreSQL
//! schema per test. Every `api_test!` runs on both backends.

mod authorization;
mod case_actions;
mod cases;
mod concurrency;
mod console;
mod demo;
mod devices;
mod diagnosis;
mod dispatch;
mod errors;
mod health;
mod helpers;
mod idempotency;
mod resilience;
mod roads;
mod scale_out;
mod sessions;
mod tracking;
mod webhooks;
