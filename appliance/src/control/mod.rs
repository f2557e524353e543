//! The control socket: the thread that serves `appliancectl` (the requests
//! and replies themselves are [`crate::api`]).

pub mod server;
