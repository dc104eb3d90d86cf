//! Table access shared by more than one service (tenants and staff are read by
//! auth, routing and the operator commands). Service-private tables live in the
//! service crates.

pub mod history;
pub mod staff;
pub mod tenants;
