//! The control socket: a thread that accepts `appliancectl` connections.
//! Reads are answered here from [`StatsSource`]; changes go to the
//! management lcore over a channel and are answered with the new table
//! version. A bad request gets an error reply; nothing a client sends can
//! stop the appliance.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::stat::{umask, Mode};
use serde_json::json;

use crate::api::{parse_request, ChangeSender, Request, Response, ShowWhat, MAX_REQUEST};
use crate::report::StatsSource;

/// The running server. Dropping it stops accepting connections, waits for the accept
/// thread (so its share of the [`StatsSource`] is released) and removes the socket file.
/// Connections already open keep their own thread until the client hangs up.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // accept() has no timeout: one connection of our own wakes it to see the flag. If
        // that fails (someone removed the socket file), the thread is left blocked rather
        // than waited for; shutdown then treats the stats source as still in use.
        let woken = UnixStream::connect(&self.path).is_ok();
        if let Some(t) = self.accept.take().filter(|_| woken) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket with mode 0600 and starts serving.
///
/// # Errors
/// The socket cannot be created (directory, permissions, in use).
pub fn start(
    path: &Path,
    source: Arc<StatsSource>,
    changes: ChangeSender,
) -> std::io::Result<Server> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another running appliance", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // The socket is born 0600: no window in which another user may connect.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let accept = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else {
                    continue;
                };
                let source = Arc::clone(&source);
                let changes = changes.clone();
                let _ = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || serve(stream, &source, &changes));
            }
        })?;
    Ok(Server {
        path: path.to_path_buf(),
        stop,
        accept: Some(accept),
    })
}

fn serve(stream: UnixStream, source: &StatsSource, changes: &ChangeSender) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut bytes = Vec::new();
        match (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut bytes)
        {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_REQUEST => {
                // Answer it, then skip the rest of the line: the next one is
                // a request of its own.
                let r = Response::err(format!("request longer than {MAX_REQUEST} bytes"));
                if reply(&mut writer, &r).is_err() || !skip_line(&mut reader) {
                    return;
                }
                continue;
            }
            Ok(_) => {}
        }
        let line = match String::from_utf8(bytes) {
            Ok(line) => line,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let r = Response::err(format!(
                    "a request is one line of UTF-8 JSON text; byte {at} of this one is not UTF-8"
                ));
                if reply(&mut writer, &r).is_err() {
                    return;
                }
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let response = match parse_request(&line) {
            Err(e) => Response::err(e.to_string()),
            // The files in force are the management lcore's.
            Ok(
                request @ Request::Show {
                    what: ShowWhat::Config,
                },
            ) => changes.call(request),
            Ok(Request::Show { what }) => show(source, what),
            Ok(Request::McastShow { input }) => to_response(&source.mcast(input.as_ref())),
            Ok(Request::PeerShow { name }) => match source.peer(&name) {
                Some(p) => to_response(&p),
                None => {
                    let names: Vec<String> = source.peers().into_iter().map(|p| p.name).collect();
                    Response::err(format!("peer: one of {names:?}, not {name:?}"))
                }
            },
            Ok(Request::McastList {}) => {
                let t = source.tables.current();
                Response::ok(json!({
                    "version": t.version,
                    "rules": t.mcast.rules.iter().map(|r| &r.spec).collect::<Vec<_>>(),
                }))
            }
            Ok(Request::LogLevel { level }) => log_level(level.as_deref()),
            Ok(request) => changes.call(request),
        };
        if reply(&mut writer, &response).is_err() {
            return;
        }
    }
}

/// Sets the log level if `level` names one; replies with the level in force.
fn log_level(level: Option<&str>) -> Response {
    if let Some(name) = level {
        match name.parse::<log::LevelFilter>() {
            Ok(l) => {
                let was = crate::logging::set_level(l);
                log::warn!("log level {was} -> {l} (control request)");
            }
            Err(_) => {
                return Response::err(format!(
                    "level: one of error, warn, info, debug, trace, off; not {name:?}"
                ))
            }
        }
    }
    Response::ok(json!({ "level": crate::logging::level().as_str().to_ascii_lowercase() }))
}

/// Reads and drops bytes up to the next newline; `false` if the connection
/// ended (or failed) first.
fn skip_line(reader: &mut BufReader<UnixStream>) -> bool {
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, buf.len()),
            },
        };
        reader.consume(used);
        if done {
            return true;
        }
    }
}

fn reply(w: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_string(r)
        .unwrap_or_else(|_| r#"{"ok":false,"error":"unserialisable reply"}"#.into());
    text.push('\n');
    w.write_all(text.as_bytes())
}

fn to_response<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_value(v) {
        Ok(v) => Response::ok(v),
        Err(e) => Response::err(format!("internal: {e}")),
    }
}

/// Answers a `show`.
pub fn show(source: &StatsSource, what: ShowWhat) -> Response {
    let value = match what {
        ShowWhat::Ports => serde_json::to_value(source.ports()),
        ShowWhat::Workers => serde_json::to_value(source.workers()),
        ShowWhat::Stats => serde_json::to_value(source.stats()),
        ShowWhat::Tunnel => match source.tunnel() {
            Some(t) => serde_json::to_value(t),
            None => return Response::err("no tunnel is configured"),
        },
        ShowWhat::Peers => serde_json::to_value(source.peers()),
        ShowWhat::Paths => serde_json::to_value(source.paths()),
        ShowWhat::Classes => serde_json::to_value(source.classes()),
        ShowWhat::Config => return Response::err("the running config is the management lcore's"),
        ShowWhat::Routes => {
            let t = source.tables.current();
            let name = |p: Option<usize>| match p {
                Some(p) => t
                    .interfaces
                    .get(p)
                    .map(|i| i.name.clone())
                    .unwrap_or_default(),
                None => "tunnel".to_string(),
            };
            // A tunnel route goes via its peer (named when the tunnel lists them).
            let peer = |p: u16| {
                t.peer(p)
                    .filter(|t| t.name != crate::config::tunnel::ONE_PEER_NAME)
                    .map(|t| t.name.clone())
            };
            let v4 = t.routes.routes().into_iter().map(|r| {
                json!({
                    "prefix": r.prefix.to_string(),
                    "kind": r.kind,
                    "via": match r.next_hop {
                        crate::tables::NextHop::Gateway { via, .. } => Some(via.to_string()),
                        crate::tables::NextHop::Tunnel(p) => peer(p),
                        crate::tables::NextHop::Connected { .. } => None,
                    },
                    "interface": name(r.next_hop.port()),
                })
            });
            let v6 = t.routes6.routes().into_iter().map(|r| {
                let via = match r.next_hop {
                    crate::tables::NextHop6::Gateway { via, .. } => Some(via.to_string()),
                    crate::tables::NextHop6::Tunnel(p) => peer(p),
                    crate::tables::NextHop6::Connected { .. } => None,
                };
                json!({
                    "prefix": r.prefix.to_string(),
                    "kind": r.kind,
                    "via": via,
                    "interface": name(r.next_hop.port()),
                })
            });
            Ok(json!({
                "version": t.version,
                "routes": v4.chain(v6).collect::<Vec<_>>(),
            }))
        }
        ShowWhat::Neighbors => {
            let t = source.tables.current();
            let v4 = t.neighbors.iter().map(|(ip, n)| (IpAddr::V4(*ip), n));
            let v6 = t
                .neighbors6
                .iter()
                .map(|(ip, n)| (IpAddr::V6(std::net::Ipv6Addr::from(*ip)), n));
            let mut v: Vec<_> = v4
                .chain(v6)
                .map(|(ip, n)| {
                    (
                        ip,
                        n.mac.to_string(),
                        t.interfaces
                            .get(n.port)
                            .map(|i| i.name.clone())
                            .unwrap_or_default(),
                    )
                })
                .collect();
            v.sort();
            Ok(json!({
                "version": t.version,
                "neighbors": v.into_iter().map(|(ip, mac, ifc)| json!({"address": ip.to_string(), "mac": mac, "interface": ifc})).collect::<Vec<_>>(),
            }))
        }
    };
    match value {
        Ok(v) => Response::ok(v),
        Err(e) => Response::err(format!("internal: {e}")),
    }
}
