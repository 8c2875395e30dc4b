//! The chat gateway over real NATS (JetStream), Redis and Postgres, beside a real apiserver.

mod fanout;
mod helpers;
mod input;
mod moderation;
mod restarts;
