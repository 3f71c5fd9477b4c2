//! The `splitgate` binary's library half: the wiring of issuer and gateway
//! into the run modes of DESIGN §7, the admin CLI client, and the demo
//! JSON:API backend. `src/main.rs` only parses arguments and dispatches here,
//! so that tests can run exactly what the binary runs.

pub mod admin_client;
pub mod cli;
pub mod demo;
pub mod run;
pub mod seed;
