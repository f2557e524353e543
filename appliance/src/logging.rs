//! The appliance's log: one line per event in `key=value` form (logfmt), rate-limited per
//! call site so that a flood of one error prints a count rather than a million lines, its
//! level changed while running (`appliancectl log level debug`), and, under systemd (stderr
//! connected to the journal), each line prefixed with the priority journald understands
//! (`<3>` error ... `<7>` debug, sd-daemon(3)) instead of a timestamp of its own.
//!
//! Only the management lcore and the control and metrics threads log; workers never do. The
//! rate limiter takes a lock, which is fine there.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Lines one call site may print in a burst, and then per second.
const BURST: f64 = 10.0;
const PER_SECOND: f64 = 2.0;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A terminal or file: `ts=... level=... target=... msg="..."`.
    Plain,
    /// journald: `<priority>level=... target=... msg="..."` (journald stamps the time).
    Journal,
}

impl Style {
    /// Journal when systemd connected stderr to the journal (`JOURNAL_STREAM`), else plain.
    pub fn detect() -> Self {
        if std::env::var_os("JOURNAL_STREAM").is_some() {
            Style::Journal
        } else {
            Style::Plain
        }
    }
}

/// One call site's budget: tokens left, when they were counted, lines held back since the
/// last printed one.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

/// The logger.
#[derive(Debug)]
pub struct Logger {
    style: Style,
    budgets: Mutex<HashMap<(&'static str, u32), Budget>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// The level when the config sets none: `RUST_LOG`'s if it is one (`debug`, ...; per-module
/// filters are not supported), else info.
pub fn default_level() -> LevelFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info)
}

/// Installs the logger, writing to stderr, at [`default_level`] (the config's `log.level`
/// replaces it once the config is read).
pub fn init(style: Style) {
    let level = default_level();
    let logger = LOGGER.get_or_init(|| Logger::new(style));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// Changes the level while running (the `log` crate's maximum level, which the logger
/// follows); the previous one.
pub fn set_level(level: LevelFilter) -> LevelFilter {
    let previous = log::max_level();
    log::set_max_level(level);
    previous
}

/// The level now.
pub fn level() -> LevelFilter {
    log::max_level()
}

impl Logger {
    fn new(style: Style) -> Self {
        Self {
            style,
            budgets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this call site may print now; if so, how many of its lines were held back
    /// since it last printed.
    fn admit(&self, site: (&'static str, u32), now: Instant) -> Option<u64> {
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        let b = budgets.entry(site).or_insert(Budget {
            tokens: BURST,
            at: now,
            suppressed: 0,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * PER_SECOND).min(BURST);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            None
        }
    }

    /// The line for `record`, without its newline.
    fn format(&self, record: &Record<'_>, suppressed: u64) -> String {
        let level = record.level();
        let mut line = match self.style {
            Style::Journal => format!("<{}>", journal_priority(level)),
            Style::Plain => format!(
                "ts={} ",
                humantime::format_rfc3339_millis(std::time::SystemTime::now())
            ),
        };
        line.push_str(&format!(
            "level={} target={} msg={}",
            level.as_str().to_ascii_lowercase(),
            record.target(),
            quoted(&record.args().to_string())
        ));
        if suppressed > 0 {
            line.push_str(&format!(" suppressed={suppressed}"));
        }
        line
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = Instant::now();
        let site = (
            record.file_static().unwrap_or(""),
            record.line().unwrap_or(0),
        );
        let Some(suppressed) = self.admit(site, now) else {
            return;
        };
        let line = self.format(record, suppressed);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// sd-daemon(3) priorities: err 3, warning 4, info 6, debug 7.
fn journal_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// `s` as a logfmt value: quoted, with quotes, backslashes and line breaks escaped, so one
/// event stays one line.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(args: std::fmt::Arguments<'a>, line: u32) -> Record<'a> {
        Record::builder()
            .args(args)
            .level(Level::Warn)
            .target("appliance::slowpath")
            .file_static(Some("src/slowpath/mod.rs"))
            .line(Some(line))
            .build()
    }

    #[test]
    fn one_line_of_key_value_fields_with_the_message_quoted() {
        let l = Logger::new(Style::Journal);
        let text = l.format(&record(format_args!("path \"a\" down\nnow"), 1), 0);
        assert_eq!(
            text,
            r#"<4>level=warn target=appliance::slowpath msg="path \"a\" down\nnow""#
        );
        let l = Logger::new(Style::Plain);
        let text = l.format(&record(format_args!("x"), 1), 3);
        assert!(
            text.starts_with("ts=20") && text.ends_with(r#" msg="x" suppressed=3"#),
            "{text}"
        );
    }

    #[test]
    fn a_flood_from_one_site_prints_a_burst_then_a_count() {
        let l = Logger::new(Style::Plain);
        let t0 = Instant::now();
        let site = ("src/x.rs", 7);
        let printed = (0..1000).filter(|_| l.admit(site, t0).is_some()).count();
        assert_eq!(printed, BURST as usize);
        // Another site is not held back by the first one's flood.
        assert_eq!(l.admit(("src/x.rs", 8), t0), Some(0));
        // A second later the site prints again, with the count of what it held back.
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(l.admit(site, t1), Some(1000 - BURST as u64));
        assert_eq!(l.admit(site, t1), Some(0));
        assert_eq!(l.admit(site, t1), None);
    }

    #[test]
    fn the_level_filters_what_is_enabled() {
        let l = Logger::new(Style::Plain);
        let meta = |level| Metadata::builder().level(level).target("t").build();
        let was = set_level(LevelFilter::Warn);
        assert!(l.enabled(&meta(Level::Error)) && l.enabled(&meta(Level::Warn)));
        assert!(!l.enabled(&meta(Level::Info)));
        assert_eq!(set_level(LevelFilter::Debug), LevelFilter::Warn);
        assert!(l.enabled(&meta(Level::Debug)));
        set_level(was);
    }
}
