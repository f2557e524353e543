//! The control socket (`appliancectl`) and its protocol.

pub mod protocol;
pub mod server;
