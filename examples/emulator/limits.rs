//! Rate limits the emulator enforces, one token bucket per provider, as
//! the services do: a request over the limit is answered 429 with
//! `Retry-After` and `X-RateLimit-*` headers, and counted. Set with
//! `--limit aioz=20/s` or `POST /_emulator/limits`.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::faults::Provider;

/// One provider's limit, as set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limit {
    /// Requests allowed per second, on average.
    pub per_second: f64,
    /// Requests that may come at once (the bucket's size); default: one
    /// second's worth.
    #[serde(default)]
    pub burst: Option<f64>,
    /// Send the `X-RateLimit-*` headers on every answer, not only on 429s.
    #[serde(default)]
    pub headers_always: bool,
}

impl Limit {
    /// `20/s`, `180/min`, or `20/s,burst=5` (for the command line).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (rate, burst) = match text.split_once(",burst=") {
            Some((rate, burst)) => {
                let burst = burst
                    .parse::<f64>()
                    .map_err(|_| format!("bad burst in {text:?}"))?;
                (rate, Some(burst))
            }
            None => (text, None),
        };
        let (n, unit) = rate
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not N/s or N/min"))?;
        let n: f64 = n.parse().map_err(|_| format!("bad count in {text:?}"))?;
        let per_second = match unit {
            "s" => n,
            "min" => n / 60.0,
            _ => return Err(format!("{text:?} is not N/s or N/min")),
        };
        let limit = Self {
            per_second,
            burst,
            headers_always: false,
        };
        limit.validate()?;
        Ok(limit)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.per_second) || !self.burst.is_none_or(|b| positive(b) && b >= 1.0) {
            return Err("a limit needs a positive per_second and a burst of at least 1".into());
        }
        Ok(())
    }

    fn capacity(&self) -> f64 {
        self.burst.unwrap_or(self.per_second.max(1.0))
    }
}

/// A provider's bucket, and what it refused.
struct Bucket {
    limit: Limit,
    tokens: f64,
    at: Instant,
}

/// What the bucket said of one request.
pub(crate) struct Verdict {
    /// Refused: seconds until a request would pass.
    pub refused_for: Option<f64>,
    /// The headers to send, if any.
    pub headers: Option<HeaderMap>,
}

/// Every provider's bucket, and the count of refusals.
#[derive(Default)]
pub(crate) struct Limits {
    buckets: BTreeMap<&'static str, Bucket>,
    refused: BTreeMap<&'static str, u64>,
}

impl Limits {
    /// Replaces every limit; the buckets start full.
    pub(crate) fn set(&mut self, limits: BTreeMap<Provider, Limit>) {
        self.buckets = limits
            .into_iter()
            .map(|(provider, limit)| {
                let bucket = Bucket {
                    tokens: limit.capacity(),
                    limit,
                    at: Instant::now(),
                };
                (provider.name(), bucket)
            })
            .collect();
    }

    pub(crate) fn current(&self) -> BTreeMap<&'static str, Limit> {
        self.buckets
            .iter()
            .map(|(p, b)| (*p, b.limit.clone()))
            .collect()
    }

    pub(crate) fn refused(&self) -> &BTreeMap<&'static str, u64> {
        &self.refused
    }

    pub(crate) fn reset_counts(&mut self) {
        self.refused.clear();
    }

    /// Takes a token for one request to `provider`, or refuses it.
    pub(crate) fn take(&mut self, provider: Option<Provider>) -> Verdict {
        let pass = Verdict {
            refused_for: None,
            headers: None,
        };
        let Some(name) = provider.map(Provider::name) else {
            return pass;
        };
        let Some(bucket) = self.buckets.get_mut(name) else {
            return pass;
        };
        let now = Instant::now();
        let capacity = bucket.limit.capacity();
        let rate = bucket.limit.per_second;
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(capacity);
        bucket.at = now;
        let refused_for = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            *self.refused.entry(name).or_default() += 1;
            Some((1.0 - bucket.tokens) / rate)
        };
        let send_headers = refused_for.is_some() || bucket.limit.headers_always;
        let headers = send_headers.then(|| {
            let mut h = HeaderMap::new();
            let number = |n: u64| HeaderValue::from(n);
            h.insert("x-ratelimit-limit", number(capacity as u64));
            h.insert(
                "x-ratelimit-remaining",
                number(bucket.tokens.floor() as u64),
            );
            // Seconds until the bucket is full again.
            let full_in = ((capacity - bucket.tokens) / rate).ceil() as u64;
            h.insert("x-ratelimit-reset", number(full_in.max(1)));
            if let Some(wait) = refused_for {
                h.insert("retry-after", number(wait.ceil().max(1.0) as u64));
            }
            h
        });
        Verdict {
            refused_for,
            headers,
        }
    }
}
