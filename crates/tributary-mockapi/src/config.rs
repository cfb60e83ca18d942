//! The server's configuration: dataset size and timeline, auth mode, rate limit and faults.
//!
//! Plain data with public fields and a [`Default`] (10,000 records, seed 42, no auth, no rate
//! limit, no faults, gzip on). [`MockConfig::validate`] is called by [`crate::start`]; it
//! reports the first field that cannot be served. Secrets are held in [`Secret`], whose Debug
//! output never shows the value.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::dataset::{DEFAULT_START_TIME_SECS, DEFAULT_STEP, Timeline};
use crate::error::MockError;

/// Everything a mock server serves and enforces.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Number of records in the dataset (indexes `0..records`).
    pub records: u64,
    /// Seed of the generated records; the same seed always gives the same records.
    pub seed: u64,
    /// `last_changed` of record 0.
    pub start_time: DateTime<Utc>,
    /// `last_changed` step between consecutive records (at least 1 ns).
    pub step: Duration,
    /// Credentials every data endpoint (and `/oauth/test`) requires.
    pub auth: MockAuth,
    /// Token bucket applied to every data endpoint and `/oauth/test`.
    pub rate_limit: Option<RateLimit>,
    /// Faults injected from the start; change them later with `MockServer::set_faults`.
    pub faults: Faults,
    /// Compress responses (gzip, deflate, brotli) when the client asks with Accept-Encoding.
    /// Off for benchmarks that want to measure the JSON path alone.
    pub compression: bool,
    /// Largest page size a client may ask for; larger asks get a 400.
    pub max_page_size: NonZeroU32,
    /// Largest number of records `/all/members` returns in one body; a window holding more
    /// gets a 400 that says so.
    pub all_cap: u64,
    /// How many of the last requests `Stats::log` keeps.
    pub log_capacity: NonZeroUsize,
    /// How 429s and injected errors express `Retry-After`.
    pub retry_after_format: RetryAfterFormat,
}

/// The two forms of `Retry-After` (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryAfterFormat {
    /// Delay seconds: `Retry-After: 2`.
    #[default]
    Seconds,
    /// An HTTP date: `Retry-After: Sun, 29 Nov 2026 17:00:02 GMT`.
    HttpDate,
}

/// Which credentials the server demands.
#[derive(Debug, Clone, Default)]
pub enum MockAuth {
    /// Every request is accepted.
    #[default]
    None,
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: Secret },
    /// Every listed key must arrive, each in the header of that name (or, leniently, in a query
    /// parameter of that name).
    ApiKey { keys: Vec<(String, Secret)> },
    /// `Authorization: Bearer <access token>`, tokens minted by `/oauth/token`.
    OAuth2(OAuth2),
}

/// The OAuth2 refresh-token flow of the server.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    /// Client id the token endpoint expects.
    pub client_id: String,
    /// Client secret the token endpoint expects.
    pub client_secret: Secret,
    /// An access token valid from server start for `access_ttl`.
    pub access_token: Secret,
    /// The refresh token valid at server start.
    pub refresh_token: Secret,
    /// Lifetime of every access token; a request with an older token gets a 401.
    pub access_ttl: Duration,
    /// Each refresh returns a new refresh token and invalidates the one that was used.
    pub rotate_refresh_token: bool,
    /// Field names of the token request and response (the reference's defaults).
    pub fields: TokenFieldNames,
}

/// Names of the token exchange fields, as `requestParameterOverride` can rename them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFieldNames {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: String,
    pub client_id: String,
    pub client_secret: String,
}

/// A credential value: compared by the server, never shown by Debug or Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// A token bucket: `per_second` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// Faults to inject. Each targeted fault names its requests with a [`Target`].
///
/// Order of application on a data request that passed the rate limit and auth: `latency`,
/// then `server_errors` (answers 5xx and stops), then `hang`, then the body faults
/// (`not_an_object`, `missing_content`, `repeating_cursor`, `foreign_pointer` shape the
/// body; `malformed` or else `truncate` damage the bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Answer some data requests with an error status instead of the page.
    pub server_errors: Option<ServerErrors>,
    /// Added before answering every data request.
    pub latency: Duration,
    /// Never answer (until the server shuts down): tests client timeouts.
    pub hang: Option<Target>,
    /// Announce the full Content-Length, send half of the body, close the connection.
    pub truncate: Option<Target>,
    /// Answer 200 with the first half of the page's JSON as a complete body.
    pub malformed: Option<Target>,
    /// The page's top level is swapped: object envelopes become the bare records array, and
    /// `/link`'s bare array becomes `{"records": [...]}`.
    pub not_an_object: Option<Target>,
    /// The records array is served under `<key>_moved` instead of its usual key (the
    /// contentPath vanishes); on `/link` as for `not_an_object`.
    pub missing_content: Option<Target>,
    /// `/cursor` answers every page with the token of the second page, forever.
    pub repeating_cursor: bool,
    /// `/pointer`'s `next` points at another server.
    pub foreign_pointer: Option<ForeignPointer>,
}

/// Which data requests a fault hits.
///
/// Data requests are numbered from 1 in arrival order, counting only those that passed the rate
/// limit and auth (so 429s and 401s do not shift the numbering). Offsets are record offsets
/// within the request's schedule window (`offset` on `/3.0`, `after` on `/pointer`,
/// `(page - base) * pageSize` on `/page`, `(page - 1) * per_page` on `/link`, the cursor's
/// position on `/cursor`, 0 on `/all`); an offset target hits every retry of that page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Exactly the n-th data request.
    Request(u64),
    /// The n-th data request and every later one.
    FromRequest(u64),
    /// Every request for the page starting at this record offset.
    Offset(u64),
}

/// Server errors injected on data requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerErrors {
    pub rate: ErrorRate,
    /// The status answered, 400..=599 (usually 500, 502, 503 or 504).
    pub status: u16,
    /// Sent as `Retry-After` in whole seconds (rounded up) when set.
    pub retry_after: Option<Duration>,
}

/// How often a server error is injected; deterministic, never random.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ErrorRate {
    /// Data requests number k, 2k, 3k, ...
    EveryNth(NonZeroU64),
    /// About this fraction (0.0..=1.0) of data requests, chosen by a hash of the seed and the
    /// request number, so a rerun with the same seed fails the same requests.
    Ratio(f64),
}

/// The pointer fault: `next` of the targeted pages names another base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignPointer {
    /// Scheme, host and port of the other server, e.g. the `base_url()` of a second
    /// `MockServer` started with `MockAuth::None` (its Stats then show whether credentials
    /// leaked to it).
    pub base_url: String,
    pub at: Target,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            records: 10_000,
            seed: 42,
            start_time: default_start_time(),
            step: DEFAULT_STEP,
            auth: MockAuth::None,
            rate_limit: None,
            faults: Faults::default(),
            compression: true,
            max_page_size: NonZeroU32::new(10_000).expect("10,000 is not zero"),
            all_cap: 100_000,
            log_capacity: NonZeroUsize::new(10_000).expect("10,000 is not zero"),
            retry_after_format: RetryAfterFormat::Seconds,
        }
    }
}

impl MockConfig {
    /// Checks what the types cannot: the timeline fits, faults are well-formed, auth values are
    /// usable.
    pub fn validate(&self) -> Result<(), MockError> {
        let timeline = Timeline::try_new(self.start_time, self.step)?;
        timeline.check_fits(self.records)?;
        self.faults.validate()?;
        self.auth.validate()
    }
}

impl Faults {
    /// Checks status codes, ratios and foreign base URLs.
    pub fn validate(&self) -> Result<(), MockError> {
        if let Some(errors) = &self.server_errors {
            if !(400..=599).contains(&errors.status) {
                return Err(MockError::Config {
                    field: "faults.server_errors.status",
                    message: format!(
                        "{} is not an error status, expected 400..=599",
                        errors.status
                    ),
                });
            }
            if let ErrorRate::Ratio(ratio) = errors.rate
                && !(0.0..=1.0).contains(&ratio)
            {
                return Err(MockError::Config {
                    field: "faults.server_errors.rate",
                    message: format!("ratio {ratio} is outside 0.0..=1.0"),
                });
            }
        }
        if let Some(foreign) = &self.foreign_pointer {
            let base = foreign.base_url.as_str();
            let has_scheme = base.starts_with("http://") || base.starts_with("https://");
            if !has_scheme || base.ends_with('/') || base.contains('?') {
                return Err(MockError::Config {
                    field: "faults.foreign_pointer.base_url",
                    message: format!(
                        "{base:?} is not a base URL, expected scheme://host[:port] without a trailing slash or query"
                    ),
                });
            }
        }
        Ok(())
    }
}

impl MockAuth {
    /// Rejects values no client could send (empty names, header names that are not tokens).
    pub fn validate(&self) -> Result<(), MockError> {
        match self {
            MockAuth::None => Ok(()),
            MockAuth::Basic { username, .. } => {
                if username.contains(':') {
                    return Err(MockError::Config {
                        field: "auth.username",
                        message: format!(
                            "{username:?} contains ':', which Basic auth cannot carry"
                        ),
                    });
                }
                Ok(())
            }
            MockAuth::ApiKey { keys } => {
                if keys.is_empty() {
                    return Err(MockError::Config {
                        field: "auth.keys",
                        message: "no key given, expected at least one (header name, value)".into(),
                    });
                }
                for (name, _) in keys {
                    if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        return Err(MockError::Config {
                            field: "auth.keys",
                            message: format!("{name:?} is not a valid header name"),
                        });
                    }
                }
                Ok(())
            }
            MockAuth::OAuth2(oauth) => {
                if oauth.access_ttl.is_zero() {
                    return Err(MockError::Config {
                        field: "auth.access_ttl",
                        message: "zero, expected a positive lifetime".into(),
                    });
                }
                Ok(())
            }
        }
    }

    /// Parses the command-line form: `none`, `basic:USER:PASS`, `apikey:HEADER:VALUE`,
    /// `bearer:TOKEN` (an access token that never expires) or
    /// `oauth2:CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN:TTL_SECONDS` (no valid access token at
    /// start: the client refreshes first). Errors never echo the secret parts.
    pub fn from_cli(text: &str) -> Result<MockAuth, MockError> {
        let scheme = text.split(':').next().unwrap_or_default();
        let parse_error = |expected: &'static str| MockError::Parse {
            what: "auth",
            value: format!("{scheme}:..."),
            expected,
        };
        let parts: Vec<&str> = text.split(':').collect();
        match (scheme.to_ascii_lowercase().as_str(), parts.as_slice()) {
            ("none", [_]) => Ok(MockAuth::None),
            ("basic", [_, user, pass]) => Ok(MockAuth::Basic {
                username: (*user).to_string(),
                password: Secret::new(*pass),
            }),
            ("basic", _) => Err(parse_error("basic:USER:PASS")),
            ("apikey", [_, header, value]) => Ok(MockAuth::ApiKey {
                keys: vec![((*header).to_string(), Secret::new(*value))],
            }),
            ("apikey", _) => Err(parse_error("apikey:HEADER:VALUE")),
            ("bearer", [_, token]) => Ok(MockAuth::OAuth2(OAuth2 {
                access_token: Secret::new(*token),
                access_ttl: Duration::from_secs(100 * 365 * 24 * 3600),
                ..OAuth2::default()
            })),
            ("bearer", _) => Err(parse_error("bearer:TOKEN")),
            ("oauth2", [_, client_id, client_secret, refresh_token, ttl]) => {
                let ttl_secs: u64 = ttl
                    .parse()
                    .ok()
                    .filter(|secs| *secs > 0)
                    .ok_or_else(|| parse_error("a positive TTL_SECONDS as the last part"))?;
                Ok(MockAuth::OAuth2(OAuth2 {
                    client_id: (*client_id).to_string(),
                    client_secret: Secret::new(*client_secret),
                    access_token: Secret::new(""),
                    refresh_token: Secret::new(*refresh_token),
                    access_ttl: Duration::from_secs(ttl_secs),
                    rotate_refresh_token: false,
                    fields: TokenFieldNames::default(),
                }))
            }
            ("oauth2", _) => Err(parse_error(
                "oauth2:CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN:TTL_SECONDS",
            )),
            _ => Err(parse_error(
                "none, basic:USER:PASS, apikey:HEADER:VALUE, bearer:TOKEN or oauth2:ID:SECRET:REFRESH:TTL",
            )),
        }
    }
}

impl Default for OAuth2 {
    /// Test-friendly values: client `mock-client`/`mock-secret`, access token `mock-access`,
    /// refresh token `mock-refresh`, one hour TTL, no rotation.
    fn default() -> Self {
        OAuth2 {
            client_id: "mock-client".into(),
            client_secret: Secret::new("mock-secret"),
            access_token: Secret::new("mock-access"),
            refresh_token: Secret::new("mock-refresh"),
            access_ttl: Duration::from_secs(3600),
            rotate_refresh_token: false,
            fields: TokenFieldNames::default(),
        }
    }
}

impl Default for TokenFieldNames {
    /// The reference's defaults: `access_token`, `refresh_token`, `expires_in`, `client_id`,
    /// `client_secret`.
    fn default() -> Self {
        TokenFieldNames {
            access_token: "access_token".into(),
            refresh_token: "refresh_token".into(),
            expires_in: "expires_in".into(),
            client_id: "client_id".into(),
            client_secret: "client_secret".into(),
        }
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for comparing and for handing to a client under test.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl RateLimit {
    /// Parses the command-line form `PER_SECOND` or `PER_SECOND/BURST` (both positive).
    pub fn from_cli(text: &str) -> Result<RateLimit, MockError> {
        let parse_error = || MockError::Parse {
            what: "rate limit",
            value: text.to_string(),
            expected: "PER_SECOND or PER_SECOND/BURST, both positive integers",
        };
        let (rate, burst) = match text.split_once('/') {
            Some((rate, burst)) => (rate, burst),
            None => (text, text),
        };
        let per_second = rate
            .trim()
            .parse::<NonZeroU32>()
            .map_err(|_| parse_error())?;
        let burst = burst
            .trim()
            .parse::<NonZeroU32>()
            .map_err(|_| parse_error())?;
        Ok(RateLimit { per_second, burst })
    }
}

impl Target {
    /// Whether the data request numbered `request_no` for the page at `offset` is hit.
    pub fn matches(&self, request_no: u64, offset: u64) -> bool {
        match *self {
            Target::Request(n) => request_no == n,
            Target::FromRequest(n) => request_no >= n,
            Target::Offset(k) => offset == k,
        }
    }
}

/// 2024-01-01T00:00:00Z, `last_changed` of record 0 by default.
pub fn default_start_time() -> DateTime<Utc> {
    Utc.timestamp_opt(DEFAULT_START_TIME_SECS, 0)
        .single()
        .expect("the default start time is a valid timestamp")
}
