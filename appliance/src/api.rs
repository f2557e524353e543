//! The control API: what `appliancectl` may ask, what it gets back, and how a
//! change travels from the control socket to the management lcore. The
//! control server, the management loop and `appliancectl` all import it; it
//! imports none of them.
//!
//! The protocol is one JSON object per line each way.
//!
//! Request: `{"cmd":"show","what":"stats"}`, `{"cmd":"route_add","prefix":"10.9.0.0/16","via":"10.0.2.2"}`,
//! `{"cmd":"route_del","prefix":"10.9.0.0/16"}`,
//! `{"cmd":"mcast_add","rule":{"input":{...},"outputs":[...]},"replace":false}`,
//! `{"cmd":"mcast_del","input":{"interface":"lan","group":"239.1.1.1","port":5000}}`,
//! `{"cmd":"mcast_list"}`, `{"cmd":"mcast_show","input":{...}}` (input optional),
//! `{"cmd":"igmp_show"}`, `{"cmd":"path_admin","path":"a","state":"down"}`,
//! `{"cmd":"bfd_set","path":"a","desired_min_tx":"300ms","detect_mult":5}`,
//! `{"cmd":"log_level","level":"debug"}`, `{"cmd":"reload"}` (`"dry_run": true`: say what would change, apply nothing).
//! Reply: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.

use std::net::IpAddr;
use std::sync::mpsc;
use std::thread::Thread;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::mcast::{McastInputSpec, McastRuleSpec};
use crate::config::tunnel::{PeerConfig, Span};

/// Longest request line accepted: room for a `peer_add` of 10,000 peers.
pub const MAX_REQUEST: usize = 8 << 20;

/// What `show` shows (also `appliancectl show <what>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ShowWhat {
    /// Ports, link, driver counters.
    Ports,
    /// Workers and their counters.
    Workers,
    /// Totals, drops by reason, slow path, mempool.
    Stats,
    /// Neighbour table.
    Neighbors,
    /// Route table.
    Routes,
    /// The tunnel: endpoints, totals, lanes and their reorder buffers.
    Tunnel,
    /// The tunnel's peers: one line each (session, paths usable, counters).
    Peers,
    /// Tunnel paths: state, measurements, counters and rates.
    Paths,
    /// Traffic classes: match, scheduler, counters and rates.
    Classes,
    /// The running config, as a file `--check` accepts: the files last applied with the
    /// routes, relay rules and BFD timers changed since (answered by the management lcore).
    Config,
}

/// `path down` or `path up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Back into the schedules (when healthy).
    Up,
    /// Out of every schedule at once (proactive handoff).
    Down,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Read something.
    Show {
        /// What.
        what: ShowWhat,
    },
    /// Add or replace a static route.
    RouteAdd {
        /// Destination (IPv4 or IPv6).
        prefix: IpNet,
        /// Next hop (of the prefix's family).
        via: IpAddr,
    },
    /// Remove a static route.
    RouteDel {
        /// Destination.
        prefix: IpNet,
    },
    /// Add a multicast relay rule.
    McastAdd {
        /// The rule.
        rule: McastRuleSpec,
        /// Replace an existing rule for the same input instead of failing.
        #[serde(default)]
        replace: bool,
    },
    /// Remove the multicast rule for an input.
    McastDel {
        /// The rule's input.
        input: McastInputSpec,
    },
    /// The rules, without counters. (Braced, like every request, so that
    /// unknown fields are refused: serde ignores them on unit variants.)
    McastList {},
    /// Rules with their counters (one rule if `input` is given).
    McastShow {
        /// Only this rule.
        #[serde(default)]
        input: Option<McastInputSpec>,
    },
    /// IGMP membership state per input port.
    IgmpShow {},
    /// One tunnel peer in full: its line, its tunnel (encryption, lanes,
    /// reorder counters), paths and classes.
    PeerShow {
        /// The peer's name (`tunnel.peers[].name`; `peer` for the one peer
        /// of a two-site tunnel).
        name: String,
    },
    /// Add tunnel peers, all in one step, as a reload would add them to the
    /// running config's `[[tunnel.peers]]` (the other peers carry on
    /// untouched); with `replace`, change peers that exist instead (by
    /// name). Until the next reload, which makes the file's peers those in
    /// force again (`show config` gives the running config to save).
    PeerAdd {
        /// The peers, as `[[tunnel.peers]]` entries (key file paths
        /// absolute).
        peers: Vec<PeerConfig>,
        /// Change existing peers (each must exist) rather than add new ones
        /// (none may exist).
        #[serde(default)]
        replace: bool,
    },
    /// Remove tunnel peers by name, all in one step (as [`Request::PeerAdd`]).
    PeerDel {
        /// Their names.
        names: Vec<String>,
    },
    /// Take a tunnel path administratively down or bring it back.
    PathAdmin {
        /// Path name.
        path: String,
        /// Down or up.
        state: AdminState,
    },
    /// Read both files again and apply what changed (what can change live; anything else
    /// refused as a whole, naming the keys).
    Reload {
        /// Only say what would change (or why it would be refused); apply nothing.
        #[serde(default)]
        dry_run: bool,
    },
    /// The log level: set it (error, warn, info, debug, trace, off) or, without one, read it.
    LogLevel {
        /// The new level.
        #[serde(default)]
        level: Option<String>,
    },
    /// Change a path's BFD timers while it runs (a Poll Sequence when Up, RFC 5880
    /// §6.8.3); the fields left out keep their values.
    BfdSet {
        /// Path name.
        path: String,
        /// Desired Min TX Interval.
        #[serde(default)]
        desired_min_tx: Option<Span>,
        /// Required Min RX Interval.
        #[serde(default)]
        required_min_rx: Option<Span>,
        /// Detect Mult.
        #[serde(default)]
        detect_mult: Option<u8>,
    },
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Success.
    pub ok: bool,
    /// Payload on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Message on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// Success with data.
    pub fn ok(data: serde_json::Value) -> Self {
        Self {
            ok: true,
            data: Some(data),
            error: None,
        }
    }
    /// Failure.
    pub fn err(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            data: None,
            error: Some(msg.into()),
        }
    }
}

/// Why a request line was refused (the reply's `error` text is its
/// `Display`).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not JSON, unknown command, missing, unknown or bad fields.
    #[error("bad request: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Parses one request line.
///
/// # Errors
/// Not JSON, unknown command, missing or bad fields.
pub fn parse_request(line: &str) -> Result<Request, RequestError> {
    Ok(serde_json::from_str(line.trim())?)
}

/// A change for the management lcore, with where to send the answer.
#[derive(Debug)]
pub struct Change {
    /// The request (anything `show` cannot answer from counters alone).
    pub request: Request,
    /// Reply channel.
    pub reply: mpsc::Sender<Response>,
}

/// How long a change may wait for the management lcore.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The control side's handle on the management lcore: sends a change and
/// wakes the management loop at once (it sleeps until its next timer
/// otherwise).
#[derive(Debug, Clone)]
pub struct ChangeSender {
    tx: mpsc::Sender<Change>,
    wake: Thread,
}

impl ChangeSender {
    /// A sender whose changes `rx` receives, waking `wake` (the management
    /// loop's thread).
    pub fn new(tx: mpsc::Sender<Change>, wake: Thread) -> Self {
        Self { tx, wake }
    }

    /// Sends `request` and waits for the reply.
    pub fn call(&self, request: Request) -> Response {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Change { request, reply: tx }).is_err() {
            return Response::err("appliance is shutting down");
        }
        self.wake.unpark();
        rx.recv_timeout(CHANGE_TIMEOUT)
            .unwrap_or_else(|_| Response::err("management lcore did not answer within 5 s"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse_request(r#"{"cmd":"show","what":"routes"}"#).ok(),
            Some(Request::Show {
                what: ShowWhat::Routes
            })
        );
        assert_eq!(
            parse_request(r#"{"cmd":"route_add","prefix":"10.9.0.0/16","via":"10.0.2.2"}"#).ok(),
            Some(Request::RouteAdd {
                prefix: "10.9.0.0/16".parse().unwrap(),
                via: "10.0.2.2".parse().unwrap()
            })
        );
    }

    #[test]
    fn parses_mcast_requests() {
        let r = parse_request(
            r#"{"cmd":"mcast_add","rule":{"input":{"interface":"lan","group":"239.1.1.1","port":5000},"outputs":[{"interface":"wan","destination":"239.10.1.1","port":6000}]}}"#,
        )
        .unwrap();
        assert!(matches!(r, Request::McastAdd { replace: false, .. }));
        assert_eq!(
            parse_request(r#"{"cmd":"mcast_show"}"#).ok(),
            Some(Request::McastShow { input: None })
        );
        assert_eq!(
            parse_request(r#"{"cmd":"mcast_list"}"#).ok(),
            Some(Request::McastList {})
        );
    }

    #[test]
    fn rejects_garbage_with_a_message() {
        for bad in [
            "",
            "{",
            "null",
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"show","what":"everything"}"#,
            r#"{"cmd":"route_add","prefix":"10.0.0.0/33","via":"1.1.1.1"}"#,
            r#"{"cmd":"show","what":"stats","x":1}"#,
            r#"{"cmd":"mcast_list","x":1}"#,
            r#"{"cmd":"igmp_show","verbose":true}"#,
            r#"{"cmd":"mcast_show","input":null,"x":1}"#,
            r#"{"cmd":"route_del","prefix":"10.9.0.0/16","via":"10.0.2.2"}"#,
            r#"{"cmd":"path_admin","path":"a","state":"down","now":true}"#,
            r#"{"cmd":"mcast_add","rule":{"input":{"interface":"lan","group":"239.1.1.1","port":5000}}}"#,
            r#"{"cmd":"mcast_del","input":{"interface":"lan","group":"nope","port":5000}}"#,
        ] {
            let e = parse_request(bad).unwrap_err().to_string();
            assert!(e.starts_with("bad request"), "{bad}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_lines_never_panic(s in ".{0,200}") {
            let _ = parse_request(&s);
        }
    }
}
