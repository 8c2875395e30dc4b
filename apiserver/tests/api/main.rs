//! The apiserver over real Postgres, Redis and NATS: one binary, a database per test.

mod analytics;
mod auth;
mod discovery;
mod followers;
mod helpers;
mod openapi;
mod streams;
mod users;
