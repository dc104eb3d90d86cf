//! The `huoke` binary's library half: assembling services into a running
//! application (used by `main` and by the black-box tests).

pub mod dev;
pub mod startup;

pub use startup::{Application, all_services, service_named};
