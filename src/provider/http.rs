//! HTTP plumbing shared by the providers: one client, bounded answers,
//! and one mapping from HTTP outcomes to [`ProviderError`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::BodyExt as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::pacing::{Pacer, Ticket};
use super::{HttpSettings, ProviderError, UnpinReceipt};
use crate::manifest::CallKind;
use crate::metrics::{CallOutcome, Metrics};

/// Answers larger than this are cut off: a pin answer is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Provider messages are shown to users; keep them to a line.
const MAX_MESSAGE_CHARS: usize = 300;
/// Provider text is kept whole up to this many characters until the keys
/// are redacted from it, and only then shortened ([`shorten`]): cut first,
/// a long key (a JWT) split at the cut would no longer be found.
const MAX_TEXT_CHARS: usize = 16 * 1024;

pub(crate) fn client(settings: &HttpSettings) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context as _;
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("pinsync/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(256)
        // No redirect is followed: reqwest would carry custom key headers
        // (`X-API-Key`, `pinning_api_key`) to another host, and an https
        // endpoint could send them on over http. No documented API
        // redirects; a 3xx becomes `ProviderError::Redirected`.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("build HTTP client")
}

/// `base_url` joined with `path`, for a provider to keep: an http(s) URL
/// that can take path segments (a saved plan may hold anything).
pub(crate) fn endpoint(base_url: &str, path: &str) -> anyhow::Result<reqwest::Url> {
    let url = reqwest::Url::parse(&format!("{base_url}{path}"))
        .map_err(|e| anyhow::anyhow!("invalid base_url {base_url:?}: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.cannot_be_a_base() {
        anyhow::bail!("base_url {base_url:?} is not an http(s) URL");
    }
    Ok(url)
}

/// `base` (from [`endpoint`], so it takes path segments) with one more
/// segment, escaped.
pub(crate) fn with_segment(base: &reqwest::Url, segment: &str) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(segment);
    }
    url
}

/// A success answer's body as `T`, or the error the answer is: the
/// provider's own failure, or one naming the `call` and the documented
/// `shape` the body lacked.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    answer: &Answer,
    call: &str,
    shape: &str,
) -> Result<T, ProviderError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        ProviderError::BadResponse(format!(
            "{call} answered {} without the documented {shape}: {e}",
            answer.status.as_u16()
        ))
    })
}

/// An unpin's answer: any success, or a 404 (the pin is gone either way).
pub(crate) fn read_unpin_answer(answer: &Answer) -> Result<UnpinReceipt, ProviderError> {
    if answer.status.is_success() {
        return Ok(UnpinReceipt {
            already_gone: false,
        });
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(UnpinReceipt { already_gone: true });
    }
    Err(answer.error())
}

/// A provider's answer, read in full.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// `Retry-After` of a failed answer, the one header read.
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The error a failed answer is, with the message its body gives.
    pub(crate) fn error(&self) -> ProviderError {
        failure(self, error_message(&self.body))
    }
}

/// One provider's HTTP client: the shared connection pool, that
/// provider's pacer, which every request waits on, and where its calls are
/// counted.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: reqwest::Client,
    pacer: Arc<Pacer>,
    meter: Option<CallMeter>,
}

/// Counts one provider's calls in the metrics.
#[derive(Debug, Clone)]
pub(crate) struct CallMeter {
    metrics: Arc<Metrics>,
    provider: String,
}

impl CallMeter {
    pub(crate) fn new(metrics: Arc<Metrics>, provider: &str) -> Self {
        Self {
            metrics,
            provider: provider.to_owned(),
        }
    }

    fn count<T>(
        meter: Option<&Self>,
        kind: CallKind,
        result: &Result<T, ProviderError>,
        status: impl Fn(&T) -> StatusCode,
    ) {
        let Some(meter) = meter else { return };
        let outcome = match result {
            Ok(answer) => CallOutcome::of(status(answer)),
            Err(ProviderError::Redirected { .. }) => CallOutcome::Redirected,
            Err(_) => CallOutcome::Transport,
        };
        meter.metrics.call(&meter.provider, kind, outcome);
    }
}

impl Client {
    pub(crate) fn new(inner: reqwest::Client, pacer: Arc<Pacer>, meter: Option<CallMeter>) -> Self {
        Self {
            inner,
            pacer,
            meter,
        }
    }

    pub(crate) fn get(&self, url: reqwest::Url) -> RequestBuilder {
        self.inner.get(url)
    }

    pub(crate) fn post(&self, url: reqwest::Url) -> RequestBuilder {
        self.inner.post(url)
    }

    pub(crate) fn delete(&self, url: reqwest::Url) -> RequestBuilder {
        self.inner.delete(url)
    }

    pub(crate) fn patch(&self, url: reqwest::Url) -> RequestBuilder {
        self.inner.patch(url)
    }

    /// Waits for the turn of a `kind` call, sends `request` and reads the
    /// answer as received, mapping transport failures. Keys the answer
    /// echoes are redacted from what is shown or stored of it, not from
    /// the answer itself (see [`super::redacted`]): a valid answer parses
    /// whatever the keys are.
    pub(crate) async fn send(
        &self,
        kind: CallKind,
        request: RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        let ticket = self.pacer.turn(kind).await;
        let answer = send(request, &self.pacer, ticket).await;
        CallMeter::count(self.meter.as_ref(), kind, &answer, |a| a.status);
        answer
    }

    /// Like [`send`](Self::send), for a call that answers one JSON value a
    /// line as it goes (Kubo's and ipfs-cluster's streamed calls): each
    /// line of a success answer is handed to `line` as it arrives, so the
    /// answer is never held whole. A failure the server reports in the
    /// `X-Stream-Error` trailer, after its 200, is an error: a listing cut
    /// short must not pass for a complete one. A failed answer is returned
    /// whole, for the type to read its error.
    pub(crate) async fn send_streamed(
        &self,
        kind: CallKind,
        request: RequestBuilder,
        line: impl FnMut(&[u8]) -> Result<(), ProviderError>,
    ) -> Result<Result<(), Answer>, ProviderError> {
        let answered = self.stream(kind, request, line).await;
        CallMeter::count(self.meter.as_ref(), kind, &answered, |a| match a {
            Ok(()) => StatusCode::OK,
            Err(failed) => failed.status,
        });
        answered
    }

    async fn stream(
        &self,
        kind: CallKind,
        request: RequestBuilder,
        mut line: impl FnMut(&[u8]) -> Result<(), ProviderError>,
    ) -> Result<Result<(), Answer>, ProviderError> {
        let ticket = self.pacer.turn(kind).await;
        // Without it a server may leave the trailer out (hyper's does).
        let request = request.header(reqwest::header::TE, "trailers");
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(redirected(&response));
        }
        if !status.is_success() {
            let retry_after = retry_after(response.headers(), SystemTime::now());
            self.pacer
                .observe(ticket, status, response.headers(), retry_after);
            let body = read_body(response).await?;
            return Ok(Err(Answer {
                status,
                retry_after,
                body,
            }));
        }
        self.pacer.observe(ticket, status, response.headers(), None);
        let mut body = http::Response::<reqwest::Body>::from(response).into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(transport)?;
            let frame = match frame.into_data() {
                Ok(data) => {
                    pending.extend_from_slice(&data);
                    let mut start = 0;
                    while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                        line(&pending[start..start + end])?;
                        start += end + 1;
                    }
                    pending.drain(..start);
                    if pending.len() > MAX_LINE_BYTES {
                        return Err(ProviderError::BadResponse(format!(
                            "a line of the streamed answer is longer than {MAX_LINE_BYTES} bytes"
                        )));
                    }
                    continue;
                }
                Err(frame) => frame,
            };
            if let Ok(trailers) = frame.into_trailers()
                && let Some(error) = trailers.get("x-stream-error")
            {
                return Err(ProviderError::Transport(format!(
                    "the streamed answer broke off: {}",
                    clean_message(&String::from_utf8_lossy(error.as_bytes()))
                )));
            }
        }
        if !pending.iter().all(u8::is_ascii_whitespace) {
            line(&pending)?;
        }
        Ok(Ok(()))
    }
}

/// A streamed answer's lines longer than this are refused: one pin's line
/// is a few hundred bytes.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// A body read whole, up to [`MAX_ANSWER_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProviderError::BadResponse(format!(
                "answer larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn send(
    request: RequestBuilder,
    pacer: &Pacer,
    ticket: Ticket,
) -> Result<Answer, ProviderError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if status.is_redirection() {
        return Err(redirected(&response));
    }
    let retry_after = if status.is_success() {
        None
    } else {
        retry_after(response.headers(), SystemTime::now())
    };
    pacer.observe(ticket, status, response.headers(), retry_after);
    let body = read_body(response).await?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The error for a 3xx answer: its status, and the origin its `Location`
/// points at (without path or query, which may hold anything).
fn redirected(response: &reqwest::Response) -> ProviderError {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok());
    let to = match location.map(|l| response.url().join(l)) {
        Some(Ok(url)) => clean_message(&url.origin().ascii_serialization()),
        Some(Err(_)) => "a Location that is not a URL".to_owned(),
        None => "no Location".to_owned(),
    };
    ProviderError::Redirected {
        status: response.status().as_u16(),
        to,
    }
}

fn transport(e: reqwest::Error) -> ProviderError {
    // reqwest's messages name the URL, never headers, so no key leaks here.
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the answer"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    ProviderError::Transport(format!("{what} ({detail})"))
}

/// The error for a non-success answer, with `message` read from its body.
pub(crate) fn failure(answer: &Answer, message: String) -> ProviderError {
    let status = answer.status.as_u16();
    match answer.status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited {
            retry_after: answer.retry_after,
            message,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            ProviderError::Unauthorized { status, message }
        }
        StatusCode::REQUEST_TIMEOUT => ProviderError::Unavailable { status, message },
        s if s.is_server_error() => ProviderError::Unavailable { status, message },
        _ => ProviderError::Rejected { status, message },
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A provider's id for a pin, as it must be sent back: refused, not
/// trimmed or cut, if it is empty, long or holds a control character (a
/// changed id would remove nothing and read as "already gone").
pub(crate) fn pin_id(text: &str) -> Result<String, ProviderError> {
    if text.is_empty() || text.len() > MAX_MESSAGE_CHARS || text.chars().any(char::is_control) {
        return Err(ProviderError::BadResponse(format!(
            "the provider's pin id {:?} is empty, longer than {MAX_MESSAGE_CHARS} bytes or holds a control character",
            clean_message(text)
        )));
    }
    Ok(text.to_owned())
}

/// A one-line, printable version of a provider's text, bounded (but not
/// yet to a line: see [`shorten`]).
pub(crate) fn clean_message(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT_CHARS)
        .collect();
    cleaned.trim().to_owned()
}

/// Provider text shortened to a line for people, once its keys are
/// redacted.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_owned(),
    }
}

/// The message of an error body, read leniently: `message`, `error` (a
/// string, or the Pinning Service API's `{reason, details}`), `code`.
pub(crate) fn error_message(body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return clean_message(&String::from_utf8_lossy(body));
    };
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let mut parts: Vec<String> = Vec::new();
    match json.get("error") {
        Some(serde_json::Value::String(e)) => parts.push(e.clone()),
        Some(obj @ serde_json::Value::Object(_)) => {
            for k in ["reason", "details"] {
                if let Some(v) = obj.get(k).and_then(|v| v.as_str()) {
                    parts.push(v.to_owned());
                }
            }
        }
        _ => {}
    }
    if let Some(m) = field("message") {
        parts.push(m);
    }
    // Some Pinning Services answer `{code, message}`, with a number or a
    // string for the code.
    match json.get("code") {
        Some(serde_json::Value::String(c)) => parts.push(format!("({c})")),
        Some(serde_json::Value::Number(c)) => parts.push(format!("({c})")),
        _ => {}
    }
    if parts.is_empty() {
        return clean_message(&String::from_utf8_lossy(body));
    }
    clean_message(&parts.join(": ").replace(": (", " ("))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that answers every connection with `answer`, counting them.
    async fn serve(answer: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (origin, count)
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_naming_its_origin_and_is_not_followed() {
        let (elsewhere, reached) =
            serve("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".into()).await;
        let metrics = Metrics::new(Duration::from_secs(60));
        for status in [301, 302, 303, 307, 308] {
            let (origin, _) = serve(format!(
                "HTTP/1.1 {status} Moved\r\nlocation: {elsewhere}/api/pinning/pinByHash?key=k\r\ncontent-length: 0\r\n\r\n"
            ))
            .await;
            let client = Client::new(
                client(&HttpSettings::default()).unwrap(),
                Arc::new(Pacer::unlimited()),
                Some(CallMeter::new(metrics.clone(), "aioz")),
            );
            let url = endpoint(&origin, "/api/pinning/pinByHash").unwrap();
            let key = super::super::Secret::new("a-key").unwrap();
            let request = client.post(url).header("x-api-key", key.header_value());
            let error = client.send(CallKind::Pin, request).await.err();
            assert_eq!(
                error,
                Some(ProviderError::Redirected {
                    status,
                    to: elsewhere.clone(),
                }),
                "{status}"
            );
            let error = error.unwrap();
            assert!(!error.is_retryable() && error.refuses_every_call());
            assert!(error.to_string().contains("base_url"), "{error}");
        }
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Each is counted, by provider, kind and outcome.
        let text = metrics.encode(&crate::provider::Pacers::default());
        assert!(
            text.contains(
                r#"pinsync_provider_calls_total{provider="aioz",kind="pin",outcome="redirected"} 5"#
            ),
            "{text}"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn error_messages_are_read_from_each_documented_shape() {
        assert_eq!(
            error_message(br#"{"error":"Bad Request","message":"Invalid CID"}"#),
            "Bad Request: Invalid CID"
        );
        assert_eq!(
            error_message(br#"{"error":"Forbidden","message":"no scope","code":"missing_scope"}"#),
            "Forbidden: no scope (missing_scope)"
        );
        assert_eq!(
            error_message(br#"{"error":{"reason":"NOT_FOUND","details":"x"}}"#),
            "NOT_FOUND: x"
        );
        assert_eq!(
            error_message(br#"{"status":"fail","message":"bad key"}"#),
            "bad key"
        );
        assert_eq!(
            error_message(br#"{"code":409,"message":"INSUFFICIENT_FUNDS"}"#),
            "INSUFFICIENT_FUNDS (409)"
        );
        assert_eq!(error_message(b"<html>\n502</html>"), "<html> 502</html>");
    }
}
