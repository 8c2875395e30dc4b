//! The chat gateway over real NATS (JetStream), Redis and Postgres, beside a real apiserver.

// Tests fail loudly by design: unwrap/expect are how they say what broke.
#![allow(clippy::unwrap_used)]

mod authz;
mod fanout;
mod helpers;
mod input;
mod moderation;
mod openapi;
mod restarts;
