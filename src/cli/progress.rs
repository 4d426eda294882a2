//! Apply progress for people: a bar on a terminal, plain lines elsewhere
//! (CI logs keep every line; a bar there is noise).

use std::io::{BufWriter, Stdout, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::render::Palette;
use crate::apply::{Halt, Outcome, Progress};
use crate::plan::Change;
use crate::provider::{Pacers, ProviderError};

/// Where apply progress goes.
pub(super) enum ApplyProgress {
    /// A bar on stderr, with each provider's pace now; retries and
    /// failures printed above it.
    Bar(ProgressBar, Palette, Pacers),
    /// One line per event on stdout.
    Lines(Palette, Mutex<LineSink>),
}

/// Plain lines, written in bursts: at thousands of pins a second, a write
/// per line costs more than the pin. Flushed at least every 200 ms, so a
/// CI log still follows along, and at the end.
pub(super) struct LineSink {
    out: BufWriter<Stdout>,
    flushed: Instant,
    /// `pinned`, painted once rather than once a line.
    pinned: String,
    /// When each long pin call (a Kubo fetch) last said how far it got.
    fetch_said: std::collections::HashMap<String, Instant>,
}

impl LineSink {
    const EVERY: Duration = Duration::from_millis(200);

    /// A line other than a pin's (a retry, a failure): rare, and what a
    /// person watching the log waits for, so it goes out at once with
    /// whatever is buffered before it.
    fn write(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        self.flush();
    }

    /// The line of a confirmed pin, the one written per call: formatted
    /// straight into the buffer.
    fn pinned(&mut self, change: &Change, already_pinned: bool) {
        let note = if already_pinned {
            " (already pinned)"
        } else {
            ""
        };
        let _ = writeln!(
            self.out,
            "{} {} {}{note}",
            self.pinned, change.target, change.cid
        );
        self.flush_now_and_then();
    }

    fn flush_now_and_then(&mut self) {
        if self.flushed.elapsed() >= Self::EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
        self.flushed = Instant::now();
    }
}

impl ApplyProgress {
    /// A bar when stderr is a terminal and this is not CI.
    pub(super) fn choose(stderr_is_terminal: bool, stdout: Palette, pacers: Pacers) -> Self {
        if stderr_is_terminal && std::env::var_os("CI").is_none() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} pins ({per_sec}, eta {eta}){msg}")
                    .expect("template is valid"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Self::Bar(bar, Palette::for_stream(true), pacers)
        } else {
            let sink = LineSink {
                out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
                flushed: Instant::now(),
                pinned: stdout.green("pinned"),
                fetch_said: std::collections::HashMap::new(),
            };
            Self::Lines(stdout, Mutex::new(sink))
        }
    }

    /// A line of its own: above the bar, or in the plain lines.
    pub(super) fn line(&self, text: String) {
        match self {
            Self::Bar(bar, ..) => bar.println(text),
            Self::Lines(_, sink) => sink.lock().expect("progress lock").write(&text),
        }
    }

    pub(super) fn finish(&self) {
        match self {
            Self::Bar(bar, ..) => bar.finish_and_clear(),
            Self::Lines(_, sink) => sink.lock().expect("progress lock").flush(),
        }
    }

    fn palette(&self) -> Palette {
        match self {
            Self::Bar(_, p, _) => *p,
            Self::Lines(p, _) => *p,
        }
    }
}

impl Progress for ApplyProgress {
    fn start(&self, calls: usize) {
        match self {
            Self::Bar(bar, ..) => bar.set_length(calls as u64),
            Self::Lines(..) if calls > 0 => self.line(format!("Pinning {calls} CID(s)...")),
            Self::Lines(..) => {}
        }
    }

    fn retrying(&self, change: &Change, error: &ProviderError, attempt: u32, delay: Duration) {
        self.line(format!(
            "retrying {} {} in {:.1}s (attempt {} failed: {error})",
            change.target,
            change.cid,
            delay.as_secs_f64(),
            attempt
        ));
    }

    fn finished(&self, change: &Change, outcome: &Outcome) {
        let p = self.palette();
        match (self, outcome) {
            (
                Self::Bar(bar, _, pacers),
                Outcome::Pinned(_) | Outcome::Unpinned(_) | Outcome::NotAttempted(_),
            ) => {
                bar.set_message(paces(pacers));
                bar.inc(1);
            }
            (Self::Bar(bar, _, pacers), Outcome::Failed { error, attempts }) => {
                bar.set_message(paces(pacers));
                bar.inc(1);
                bar.println(failed_line(p, change, error, *attempts));
            }
            (Self::Lines(_, sink), Outcome::Pinned(r)) => {
                let mut sink = sink.lock().expect("progress lock");
                if !sink.fetch_said.is_empty() {
                    sink.fetch_said
                        .remove(&format!("{} {}", change.target, change.cid));
                }
                sink.pinned(change, r.already_pinned);
            }
            (Self::Lines(..), Outcome::Unpinned(r)) => {
                let gone = if r.already_gone {
                    " (was gone already)"
                } else {
                    ""
                };
                self.line(format!("unpinned {} {}{gone}", change.target, change.cid));
            }
            (Self::Lines(..), Outcome::Failed { error, attempts }) => {
                self.line(failed_line(p, change, error, *attempts));
            }
            // Said once per provider (`halted`), and in the closing summary.
            (_, Outcome::NotAttempted(_) | Outcome::Interrupted) => {}
        }
    }

    /// On the bar, at once; in plain lines, every 30 s of a fetch, so a
    /// CI log shows a long pin is moving without a line each half second.
    fn fetching(&self, change: &Change, blocks: u64, bytes: u64) {
        let what = format!(
            "fetching {} {}: {blocks} blocks ({}) so far",
            change.target,
            change.cid,
            crate::provider::human_bytes(bytes)
        );
        match self {
            Self::Bar(bar, _, pacers) => bar.set_message(format!("{} · {what}", paces(pacers))),
            Self::Lines(_, sink) => {
                let mut sink = sink.lock().expect("progress lock");
                let key = format!("{} {}", change.target, change.cid);
                let now = Instant::now();
                let first = *sink.fetch_said.entry(key.clone()).or_insert(now);
                if now.duration_since(first) >= Duration::from_secs(30) {
                    sink.fetch_said.insert(key, now);
                    sink.write(&what);
                }
            }
        }
    }

    fn halted(&self, provider: &str, why: &Halt, credentials: &[String]) {
        self.line(format!(
            "{} provider `{provider}`: {}; its remaining pins are not attempted",
            self.palette().red("stopped:"),
            why.describe(credentials)
        ));
    }
}

/// Each paced provider's pace now, after the bar's own figures: the
/// service may hold pinsync below the manifest's `rate_limit`.
fn paces(pacers: &Pacers) -> String {
    let rates = pacers.rates();
    if rates.is_empty() {
        return String::new();
    }
    let rates: Vec<String> = rates
        .iter()
        .map(|(provider, rate)| format!("{provider} {}", super::render::rate(*rate)))
        .collect();
    format!(" · paced: {}", rates.join(", "))
}

fn failed_line(p: Palette, change: &Change, error: &ProviderError, attempts: u32) -> String {
    let reason = crate::apply::failure_reason(error, attempts);
    format!(
        "{} {} {}: {reason}",
        p.red(super::render::failed_word(change)),
        change.target,
        change.cid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RateLimit;

    #[test]
    fn the_bar_shows_each_paced_providers_pace_now() {
        let pacers = Pacers::default();
        assert_eq!(paces(&pacers), "", "nothing paced, nothing said");
        let none = std::collections::BTreeMap::new();
        pacers.get("aioz", Some(RateLimit::parse("180/min").unwrap()), &none);
        pacers.get("psa", None, &none);
        assert_eq!(paces(&pacers), " · paced: aioz 3/s");
    }
}
