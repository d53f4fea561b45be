//! The compiler, end to end: manifests in, snapshot and diagnostics out, asserted through what a
//! client would see (which rule serves a request) and what a user would read (conditions).

mod attachment;
mod auth;
mod backends;
mod determinism;
mod fixture;
mod hostnames;
mod policies;
mod precedence;
mod validation;
