//! `FetchError`: every failure of the fetcher, classified by cause, plus the `Redactor` that
//! keeps secrets out of every message.
//!
//! Messages are built from already-redacted text: a URL loses its userinfo and the values of
//! query parameters that carry credentials, a body excerpt is cut to its first
//! [`BODY_HEAD_BYTES`] bytes, and every known secret value is replaced by `***`. Headers are never
//! printed.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::secret::Secret;

/// How many bytes of a response body an error message quotes.
pub const BODY_HEAD_BYTES: usize = 200;

/// How many characters of a body that is not JSON an error message quotes.
pub const NOT_JSON_HEAD_CHARS: usize = 60;

/// Secrets are scrubbed from this much text around a quoted excerpt before it is cut, so a
/// secret that straddles the cut is still replaced, not half shown.
const SCRUB_WINDOW_BYTES: usize = 4096;

/// Whose fault a failure is, which decides how the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCause {
    /// The remote API answered with an error status or misbehaved (loops, oversized answers).
    RemoteApi,
    /// The request never got an answer: connection refused, reset, timeout.
    Network,
    /// The spec or the data does not fit: bad template, contentPath missing, malformed JSON.
    SpecData,
    /// Credentials are missing, rejected, or could not be refreshed.
    Auth,
}

/// Every failure of the fetcher. Display text never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The API answered with a non-success status (other than 401/403).
    #[error("{url}: http status {status}: {body_head}")]
    Status {
        url: String,
        status: u16,
        body_head: String,
    },
    /// The API refused the credentials (401 after a refresh attempt, or 403).
    #[error("{url}: credentials rejected with http status {status}: {body_head}")]
    Unauthorized {
        url: String,
        status: u16,
        body_head: String,
    },
    /// No answer within the per-request timeout.
    #[error("{url}: no response within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The connection could not be made or broke before the answer started.
    #[error("{url}: connection failed: {detail}")]
    Connect { url: String, detail: String },
    /// The answer started but its body could not be read to the end.
    #[error("{url}: reading the response body failed: {detail}")]
    Body { url: String, detail: String },
    /// The body grew past the configured response-size cap.
    #[error("{url}: response body larger than the cap of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// Retries were exhausted (attempt cap or total-time cap); `last` is the final failure.
    #[error("gave up after {attempts} attempts in {elapsed:?}: {last}")]
    RetriesExhausted {
        attempts: u32,
        elapsed: Duration,
        last: Box<FetchError>,
    },
    /// The page is not valid JSON (truncated or malformed).
    #[error("page {page_idx} from {url}: malformed json at byte {offset}: {detail}")]
    Malformed {
        page_idx: u64,
        url: String,
        offset: usize,
        detail: String,
    },
    /// The body of a success answer is not JSON at all (an HTML error page answered `200`).
    #[error(
        "page {page_idx} is not JSON ({}): starts with {head} (url {url})",
        content_type.as_deref().map_or("no content-type".to_owned(), |ct| format!("content-type {ct}"))
    )]
    NotJson {
        page_idx: u64,
        url: String,
        /// The `Content-Type` as sent (scrubbed, cut), if any.
        content_type: Option<String>,
        /// The first characters of the body, scrubbed, escaped and quoted.
        head: String,
    },
    /// The contentPath is missing from the page or does not point at an array.
    #[error("page {page_idx}: contentPath {path} {problem}; keys at {at}: [{keys}]", keys = keys.join(", "))]
    ContentPath {
        page_idx: u64,
        path: String,
        problem: String,
        at: String,
        keys: Vec<String>,
    },
    /// An element of the records array is not an object.
    #[error(
        "page {page_idx}: record {element_idx} of the contentPath array is {found}, expected an object"
    )]
    RecordNotObject {
        page_idx: u64,
        element_idx: usize,
        found: &'static str,
    },
    /// An explodeEntityPath or a small value path met something it cannot use.
    #[error("page {page_idx}: {detail}")]
    Data { page_idx: u64, detail: String },
    /// Pagination returned a token or URL already seen in this run.
    #[error(
        "pagination loop: page {page_idx} returned the {kind} {value:?}, already seen earlier in this run"
    )]
    Loop {
        page_idx: u64,
        kind: &'static str,
        value: String,
    },
    /// The spec cannot be turned into a request (template, URL, unsupported construct).
    #[error("{0}")]
    Spec(String),
    /// A credential the auth type needs is missing.
    #[error("auth param {field} is missing or empty")]
    MissingCredential { field: String },
    /// A redirect that cannot be followed (too many, or a Location that is no http(s) URL).
    #[error("{url}: the redirect (http status {status}) cannot be followed: {detail}")]
    Redirect {
        url: String,
        status: u16,
        detail: String,
    },
    /// A request to another origin would carry a secret value in its URL or body.
    #[error(
        "page {page_idx}: the {via} leads to another origin ({url}) with a credential {carrier}; refusing to send it there"
    )]
    CredentialOffOrigin {
        page_idx: u64,
        /// What led there: `redirect`, `next pointer URL`, `Link next URL`, `request`.
        via: &'static str,
        /// The target, redacted.
        url: String,
        /// `in its URL`, `in the request body it would send`.
        carrier: &'static str,
    },
    /// A `Retry-After` or rate-limit reset asked for a wait longer than the maximum wait.
    #[error(
        "{url}: the API asked to wait {} s ({header}: {value}), more than the maximum wait of {} (limits.max_wait_secs)",
        seconds_text(*seconds),
        duration_text(*max_wait)
    )]
    WaitTooLong {
        url: String,
        seconds: f64,
        header: &'static str,
        value: String,
        max_wait: Duration,
    },
    /// The OAuth2 token refresh failed.
    #[error("token refresh at {url} failed: {detail}")]
    Refresh {
        url: String,
        detail: String,
        retryable: bool,
    },
}

/// Scrubs secrets out of URLs and text before they go into an error or a log field.
///
/// Clones share the list of secret values, so a token learned by a refresh is scrubbed from
/// every message built afterwards.
#[derive(Clone, Default)]
pub struct Redactor {
    secret_values: Arc<RwLock<Vec<Secret>>>,
    secret_params: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secret_values", &self.values().len())
            .field("secret_params", &self.secret_params)
            .finish()
    }
}

impl FetchError {
    /// Whose fault the failure is.
    pub fn cause(&self) -> ErrorCause {
        match self {
            FetchError::Status { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Loop { .. }
            | FetchError::NotJson { .. }
            | FetchError::Redirect { .. }
            | FetchError::CredentialOffOrigin { .. }
            | FetchError::WaitTooLong { .. } => ErrorCause::RemoteApi,
            FetchError::Timeout { .. } | FetchError::Connect { .. } | FetchError::Body { .. } => {
                ErrorCause::Network
            }
            FetchError::RetriesExhausted { last, .. } => last.cause(),
            FetchError::Malformed { .. }
            | FetchError::ContentPath { .. }
            | FetchError::RecordNotObject { .. }
            | FetchError::Data { .. }
            | FetchError::Spec(_) => ErrorCause::SpecData,
            FetchError::Unauthorized { .. }
            | FetchError::MissingCredential { .. }
            | FetchError::Refresh { .. } => ErrorCause::Auth,
        }
    }

    /// Whether trying the same request again (now or in a later run) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Timeout { .. } | FetchError::Connect { .. } | FetchError::Body { .. } => {
                true
            }
            FetchError::RetriesExhausted { last, .. } => last.is_retryable(),
            FetchError::Refresh { retryable, .. } => *retryable,
            FetchError::Unauthorized { .. }
            | FetchError::TooLarge { .. }
            | FetchError::Malformed { .. }
            | FetchError::NotJson { .. }
            | FetchError::ContentPath { .. }
            | FetchError::RecordNotObject { .. }
            | FetchError::Data { .. }
            | FetchError::Loop { .. }
            | FetchError::WaitTooLong { .. }
            | FetchError::Redirect { .. }
            | FetchError::CredentialOffOrigin { .. }
            | FetchError::Spec(_)
            | FetchError::MissingCredential { .. } => false,
        }
    }

    /// The refusal of a wait `hint` longer than `max_wait`, for the request to `url` (redacted).
    pub(crate) fn wait_too_long(
        url: &str,
        hint: &crate::headers::WaitHint,
        max_wait: Duration,
        redactor: &Redactor,
    ) -> FetchError {
        FetchError::WaitTooLong {
            url: url.to_owned(),
            seconds: hint.seconds,
            header: hint.header,
            value: redactor.text(&hint.value),
            max_wait,
        }
    }

    /// The failure of page `page_idx` whose body is not JSON: names the content type and the
    /// body's first characters (scrubbed, escaped, at most [`NOT_JSON_HEAD_CHARS`]).
    pub(crate) fn not_json(
        page_idx: u64,
        url: &str,
        headers: &http::HeaderMap,
        body: &[u8],
        redactor: &Redactor,
    ) -> FetchError {
        let content_type = headers.get(http::header::CONTENT_TYPE).map(|value| {
            cut(
                &redactor.text(&String::from_utf8_lossy(value.as_bytes())),
                100,
            )
        });
        let head = redactor.text_head(body, NOT_JSON_HEAD_CHARS);
        FetchError::NotJson {
            page_idx,
            url: url.to_owned(),
            content_type,
            head: format!("\"{}\"", head.escape_debug()),
        }
    }

    /// The error with the text it quotes from the API (object keys of a page, details) scrubbed
    /// by `redactor`.
    pub(crate) fn redacted(self, redactor: &Redactor) -> FetchError {
        match self {
            FetchError::ContentPath {
                page_idx,
                path,
                problem,
                at,
                keys,
            } => FetchError::ContentPath {
                page_idx,
                path,
                problem,
                at,
                keys: keys.iter().map(|key| redactor.text(key)).collect(),
            },
            FetchError::Data { page_idx, detail } => FetchError::Data {
                page_idx,
                detail: redactor.text(&detail),
            },
            FetchError::Malformed {
                page_idx,
                url,
                offset,
                detail,
            } => FetchError::Malformed {
                page_idx,
                url,
                offset,
                detail: redactor.text(&detail),
            },
            other => other,
        }
    }

    /// The HTTP status, when the failure is an answer of the API.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } | FetchError::Unauthorized { status, .. } => {
                Some(*status)
            }
            FetchError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// Query parameter names that carry credentials even when the spec does not say so.
const SENSITIVE_PARAM_WORDS: [&str; 7] = [
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "auth",
];

/// Secret values shorter than this are not searched for in text: replacing a 2-letter
/// password everywhere would mangle messages without protecting anything real.
const MIN_SCRUBBED_SECRET_LEN: usize = 4;

impl Redactor {
    /// A redactor that knows these secret values and these credential-carrying param names.
    pub fn new(secret_values: Vec<Secret>, secret_params: Vec<String>) -> Self {
        let secret_values: Vec<Secret> = secret_values
            .into_iter()
            .filter(|s| s.expose().len() >= MIN_SCRUBBED_SECRET_LEN)
            .collect();
        Self {
            secret_values: Arc::new(RwLock::new(secret_values)),
            secret_params,
        }
    }

    /// Adds a secret value learned later (a refreshed token); every clone sees it.
    pub fn add_secret(&self, secret: &Secret) {
        if secret.expose().len() < MIN_SCRUBBED_SECRET_LEN {
            return;
        }
        let mut values = self
            .secret_values
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !values.contains(secret) {
            values.push(secret.clone());
        }
    }

    /// Adds a credential-carrying query parameter name.
    pub fn add_secret_param(&mut self, name: &str) {
        if !self
            .secret_params
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
        {
            self.secret_params.push(name.to_owned());
        }
    }

    fn values(&self) -> std::sync::RwLockReadGuard<'_, Vec<Secret>> {
        // The list is append-only plain data; a panic elsewhere cannot leave it inconsistent.
        self.secret_values
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The URL without userinfo, with credential query values replaced by `***`.
    pub fn url(&self, url: &url::Url) -> String {
        let mut shown = url.clone();
        // Both setters fail only for URLs that cannot have userinfo; then there is none to hide.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(name, value)| {
                    let value = if self.is_sensitive_param(&name) {
                        "***".to_owned()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.text(shown.as_str())
    }

    /// Like [`Redactor::url`] for a string that may not parse as a URL.
    pub fn url_str(&self, url: &str) -> String {
        match url::Url::parse(url) {
            Ok(parsed) => self.url(&parsed),
            Err(_) => self.text(url),
        }
    }

    /// The text with every known secret value replaced by `***`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.values().iter() {
            if out.contains(secret.expose()) {
                out = out.replace(secret.expose(), "***");
            }
        }
        out
    }

    /// The first [`BODY_HEAD_BYTES`] bytes of a body as text (lossy UTF-8), scrubbed.
    pub fn body_head(&self, body: &[u8]) -> String {
        // Scrub before cutting: a secret across the cut would otherwise be shown in part.
        let window = &body[..body.len().min(SCRUB_WINDOW_BYTES)];
        let scrubbed = self.text(&String::from_utf8_lossy(window));
        let scrubbed = scrubbed.trim();
        let mut end = scrubbed.len().min(BODY_HEAD_BYTES);
        while !scrubbed.is_char_boundary(end) {
            end -= 1;
        }
        let mut head = scrubbed[..end].to_owned();
        if end < scrubbed.len() || body.len() > window.len() {
            head.push('…');
        }
        head
    }

    /// The first `chars` characters of a body as text (lossy UTF-8), scrubbed before it is cut,
    /// with `…` when there is more.
    pub fn text_head(&self, body: &[u8], chars: usize) -> String {
        let window = &body[..body.len().min(SCRUB_WINDOW_BYTES)];
        let scrubbed = self.text(&String::from_utf8_lossy(window));
        let mut head = cut(&scrubbed, chars);
        if !head.ends_with('…') && body.len() > window.len() {
            head.push('…');
        }
        head
    }

    /// Whether `text` holds a known secret value, as is or percent-decoded.
    pub fn contains_secret(&self, text: &str) -> bool {
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        let form_decoded = decoded.replace('+', " ");
        self.values().iter().any(|secret| {
            let value = secret.expose();
            text.contains(value) || decoded.contains(value) || form_decoded.contains(value)
        })
    }

    fn is_sensitive_param(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.secret_params
            .iter()
            .any(|p| p.eq_ignore_ascii_case(name))
            || SENSITIVE_PARAM_WORDS.iter().any(|w| lower.contains(w))
    }
}

/// The first `chars` characters of `text`, with `…` when there is more.
pub(crate) fn cut(text: &str, chars: usize) -> String {
    let mut rest = text.chars();
    let mut shown: String = rest.by_ref().take(chars).collect();
    if rest.next().is_some() {
        shown.push('…');
    }
    shown
}

/// Seconds for a message: `30`, `0.5`, `1e30`.
fn seconds_text(seconds: f64) -> String {
    if seconds >= 1e9 {
        format!("{seconds:e}")
    } else if seconds.fract() == 0.0 {
        format!("{seconds:.0}")
    } else {
        let text = format!("{seconds:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A duration for a message, the way config files write them: `15m`, `1h30m`, `90ms`.
pub(crate) fn duration_text(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    for (value, unit) in [(hours, "h"), (minutes, "m"), (seconds, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

#[cfg(test)]
mod tests;
