//! Provider failures, typed so that retry policy can tell them apart.

use std::time::Duration;

/// Why one provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProviderError {
    /// 429: slow down, and come back after `retry_after` when given.
    #[error("rate limited (HTTP 429){}", message_suffix(.message))]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx or 408: the service had a problem; worth another try.
    #[error("HTTP {status}{}", message_suffix(.message))]
    Unavailable { status: u16, message: String },
    /// Timeout, refused or dropped connection; worth another try.
    #[error("{0}")]
    Transport(String),
    /// The answer was not what the provider documents (bad JSON, missing
    /// fields). The pin may or may not exist; another try will tell.
    #[error("unexpected answer: {0}")]
    BadResponse(String),
    /// 401 or 403: the provider refused the credentials (a wrong or revoked
    /// key, a missing scope). Every other call to it would fail the same way.
    #[error("HTTP {status}{}", message_suffix(.message))]
    Unauthorized { status: u16, message: String },
    /// Any other 4xx: the provider refused this pin; retrying will not help.
    #[error("HTTP {status}{}", message_suffix(.message))]
    Rejected { status: u16, message: String },
    /// A call that runs long by nature (Kubo's `pin/add` fetching a DAG)
    /// ran out of its time; the message says how far it got. Not tried
    /// again in this run: the next one resumes it.
    #[error("{0}")]
    Unfinished(String),
    /// A 3xx: the provider sent the call elsewhere. pinsync follows no
    /// redirect, so that no key ever reaches another address; every other
    /// call would be redirected too.
    #[error(
        "HTTP {status}: redirected to {to}, which pinsync does not follow (a key must not go to another address); set base_url to the address the service documents"
    )]
    Redirected {
        status: u16,
        /// The origin (scheme, host, port) of the `Location`, or why none.
        to: String,
    },
}

impl ProviderError {
    /// Whether another attempt might succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::Rejected { .. }
                | Self::Unauthorized { .. }
                | Self::Redirected { .. }
                | Self::Unfinished(_)
        )
    }

    /// Whether every other call to the provider would fail the same way
    /// (refused credentials, a redirect): it gets no more calls in this run.
    pub(crate) fn refuses_every_call(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::Redirected { .. })
    }

    /// The same error with `f` applied to each text it holds (messages,
    /// and a redirect's target), as what a provider said is redacted.
    pub(crate) fn map_text(self, f: impl Fn(String) -> String) -> Self {
        match self {
            Self::RateLimited {
                retry_after,
                message,
            } => Self::RateLimited {
                retry_after,
                message: f(message),
            },
            Self::Unavailable { status, message } => Self::Unavailable {
                status,
                message: f(message),
            },
            Self::Transport(message) => Self::Transport(f(message)),
            Self::BadResponse(message) => Self::BadResponse(f(message)),
            Self::Unfinished(message) => Self::Unfinished(f(message)),
            Self::Unauthorized { status, message } => Self::Unauthorized {
                status,
                message: f(message),
            },
            Self::Rejected { status, message } => Self::Rejected {
                status,
                message: f(message),
            },
            Self::Redirected { status, to } => Self::Redirected { status, to: f(to) },
        }
    }

    /// How long the provider asked us to wait, if it did.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}
