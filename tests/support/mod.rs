//! Harnesses shared by Portcullis' integration tests; a test binary pulls them in with
//! `mod support;`.

pub mod control_plane;
pub mod kubectl;
