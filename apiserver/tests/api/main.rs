//! The apiserver over real Postgres, Redis and NATS: one binary, a database per test.

// Tests fail loudly by design: unwrap/expect are how they say what broke.
#![allow(clippy::unwrap_used)]

mod analytics;
mod auth;
mod authz;
mod delivery;
mod discovery;
mod followers;
mod helpers;
mod kubernetes;
mod limits;
mod local;
mod openapi;
mod recordings;
mod streams;
mod users;
