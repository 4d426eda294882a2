//! One line per event, with a timestamp, as text or JSON (for log shippers).
//!
//! Only values the caller passes are printed; credentials never reach this
//! type (they live in `provider::Secret`, which cannot be formatted).

use std::io::Write as _;

use serde_json::{Map, Value};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// `2026-01-01T00:00:00Z INFO  event: message key=value`
    Text,
    /// One JSON object per line: `{"ts", "level", "event", "msg", ...fields}`.
    Json,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Writes event lines to stdout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventLog {
    format: LogFormat,
}

impl EventLog {
    pub(crate) fn new(format: LogFormat) -> Self {
        Self { format }
    }

    /// Logs one event. `fields` must be a JSON object (or null).
    pub(crate) fn event(&self, level: Level, event: &str, msg: &str, fields: Value) {
        let line = self.line(level, event, msg, fields, &crate::state::now_rfc3339());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn line(&self, level: Level, event: &str, msg: &str, fields: Value, ts: &str) -> String {
        let fields = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        match self.format {
            LogFormat::Json => {
                let mut obj = Map::new();
                obj.insert("ts".into(), ts.into());
                obj.insert("level".into(), level.as_str().into());
                obj.insert("event".into(), event.into());
                obj.insert("msg".into(), msg.into());
                obj.extend(fields);
                Value::Object(obj).to_string()
            }
            LogFormat::Text => {
                let mut line = format!("{ts} {:<5} {event}: {msg}", level.as_str().to_uppercase());
                for (k, v) in fields {
                    match v {
                        Value::String(s) => line.push_str(&format!(" {k}={s:?}")),
                        other => line.push_str(&format!(" {k}={other}")),
                    }
                }
                line
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_lines_are_one_object_with_the_fields() {
        let log = EventLog::new(LogFormat::Json);
        let line = log.line(Level::Warn, "apply", "done", json!({"pinned": 3}), "T");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({"ts": "T", "level": "warn", "event": "apply", "msg": "done", "pinned": 3})
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn text_lines_carry_time_level_event_and_fields() {
        let log = EventLog::new(LogFormat::Text);
        let line = log.line(
            Level::Info,
            "change",
            "seen",
            json!({"file": "pins.yaml", "n": 2}),
            "T",
        );
        assert_eq!(line, r#"T INFO  change: seen file="pins.yaml" n=2"#);
    }
}
