//! The appliance: a DPDK data plane for a multipath WAN tunnel and a
//! multicast translation relay (see `docs/architecture.md`).
//!
//! Layout: `wire` parses and builds packets on byte buffers; `config` reads
//! the hardware profile and the config; `tables` holds what workers read;
//! `dataplane` is the per-packet path; `slowpath` is the management lcore;
//! `control` and `metrics` are how operators look in; `boot` ties it up.
#![forbid(unsafe_code)]

pub mod api;
pub mod bfd;
pub mod boot;
pub mod buf;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod interface;
pub mod logging;
pub mod metrics;
pub mod mgmt;
pub mod prepare;
pub mod reload;
pub mod report;
pub mod service;
pub mod slowpath;
pub mod stats;
pub mod tables;
pub mod time;
pub mod tunnel;
pub mod wire;
