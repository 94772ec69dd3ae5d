//! The RecordingEvent custom handler: Azure Communication Services recording events, delivered by Event Grid through
//! the Azure Functions host, turned into one recording document per recording and persisted.
//!
//! The data flows one way — host request ([`host`]) → function ([`functions`]) → event ([`event`], [`subject`]) →
//! recording ([`recording`]) → store ([`store`]) → reply — with [`pipeline`] deciding what becomes of each event.

#![forbid(unsafe_code)]

pub mod api;
pub mod archive;
pub mod clock;
pub mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod event;
pub mod functions;
pub mod health;
pub mod host;
pub mod identity;
pub mod local_names;
pub mod loss;
pub mod pipeline;
pub mod quarantine;
pub mod recording;
pub mod retry;
pub mod secret;
pub mod store;
pub mod subject;
pub mod telemetry;
