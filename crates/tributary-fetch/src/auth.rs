//! Auth: the credentials of a base connection turned into request headers.
//!
//! - Basic: `Authorization: Basic base64(username:password)`.
//! - KeyBased: each key in its `headerParamName` header (or a header named after the property).
//! - OAuth2RefreshCode: `Authorization: Bearer <accessToken>`. The token is refreshed through
//!   `accessTokenUrl` before `expirationDate` (proactively, with a safety margin) and once after a
//!   401, with the method and field names of `requestParameterOverride`. Refreshes are
//!   single-flight: concurrent requests that all find the token stale wait on one gate, and
//!   whoever gets the gate second re-checks and finds the fresh token, so N requests cause one
//!   token call. Rotated tokens go to a caller-supplied callback so the caller can persist them.
//!
//! [`Auth`] is a cloneable handle: the engine may share one across the runs of a base connection
//! so their refreshes are single-flight too. Its `Debug` prints no secret; every credential is a
//! [`Secret`] and every header value is marked sensitive.

mod shared;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tributary_spec::{AuthKind, AuthSpec, HttpMethod, TokenRequestNames};

use crate::error::{FetchError, Redactor};
use crate::limit::CredentialFingerprint;
use crate::secret::Secret;

pub use shared::AuthRegistry;
use shared::{Membership, TokenState};

/// Tokens after a refresh, handed to the caller to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedTokens {
    pub access_token: Secret,
    /// The new refresh token, when the server rotated it.
    pub refresh_token: Option<Secret>,
    /// The new expiry, from the `expires_in` field.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Called with the tokens after a refresh, to persist them. `key` names the persisting party
/// (the engine uses the flow's token key): when several runs share one grant (see
/// [`AuthRegistry`]), each distinct key is called once per rotation.
#[derive(Clone)]
pub struct TokenCallback {
    key: String,
    call: Arc<dyn Fn(&RotatedTokens) + Send + Sync>,
}

/// The credentials of a base connection, ready to sign requests.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<AuthInner>,
}

/// The result of [`test_connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionCheck {
    /// `authorizationTestUrl` answered with a success status.
    Passed { status: u16 },
    /// The connection has no `authorizationTestUrl`; credentials are checked on the first fetch.
    NoTestUrl,
}

/// Headers for one request, and the token generation they carry (to make a refresh after a
/// 401 single-flight: only a request that saw the current generation refreshes).
#[derive(Debug, Clone)]
pub(crate) struct SignedHeaders {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub generation: u64,
}

struct AuthInner {
    method: AuthMethod,
    fingerprint: CredentialFingerprint,
    redactor: Redactor,
    /// `authorizationTestUrl` (the param, else the schema's default) with its placeholders
    /// rendered from the auth params, or why it could not be rendered.
    test_url: Option<Result<String, String>>,
    /// The secret auth params by name, so a stored next-page URL can name a secret instead of
    /// holding it (see `FetchPlan::stored_url`).
    named_secrets: Vec<(String, Secret)>,
}

enum AuthMethod {
    None,
    Basic { header: HeaderValue },
    Keys(Vec<(HeaderName, HeaderValue)>),
    OAuth(Box<OAuth>),
}

struct OAuth {
    client_id: Option<Secret>,
    client_secret: Option<Secret>,
    names: TokenRequestNames,
    on_rotate: Option<TokenCallback>,
    /// The tokens, the refresh gate and the token URL: this auth's own, or those of the grant
    /// it shares with other runs ([`AuthRegistry::share`]).
    state: Arc<TokenState>,
    /// This auth's place among the state's parties, left when the auth is dropped.
    _membership: Membership,
}

/// An OAuth2 credential before its token state is built.
struct OAuthParts {
    tokens: Tokens,
    token_url: Option<String>,
    client: Option<CredentialFingerprint>,
    client_id: Option<Secret>,
    client_secret: Option<Secret>,
    on_rotate: Option<TokenCallback>,
}

#[derive(Clone)]
struct Tokens {
    access: Secret,
    refresh: Option<Secret>,
    expires_at: Option<DateTime<Utc>>,
    /// How long the current token lives, when known (for the refresh margin).
    lifetime: Option<Duration>,
    generation: u64,
}

/// Refresh this long before expiry at most; a tenth of the lifetime for short-lived tokens.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

impl Auth {
    /// No credentials.
    pub fn none() -> Auth {
        Auth {
            inner: Arc::new(AuthInner {
                method: AuthMethod::None,
                fingerprint: CredentialFingerprint::NONE,
                redactor: Redactor::default(),
                test_url: None,
                named_secrets: Vec::new(),
            }),
        }
    }

    /// The credentials of `params` (the base connection's `auth.params`, `${env:X}` already
    /// resolved) for `auth_spec`. `secret_fields` names the params whose values are secrets.
    pub fn try_new(
        auth_spec: &AuthSpec,
        params: &Map<String, Value>,
        secret_fields: &[String],
        on_rotate: Option<TokenCallback>,
    ) -> Result<Auth, FetchError> {
        let mut named_secrets: Vec<(String, Secret)> = Vec::new();
        for field in secret_fields.iter().chain(&auth_spec.secret_fields) {
            let Some(value) = param_text(params, field).filter(|v| !v.is_empty()) else {
                continue;
            };
            if !named_secrets.iter().any(|(name, _)| name == field) {
                named_secrets.push((field.clone(), Secret::new(value)));
            }
        }
        let mut secrets: Vec<Secret> = named_secrets.iter().map(|(_, s)| s.clone()).collect();
        let text = |name: &str| param_text(params, name);
        let secret = |name: &str| -> Result<Secret, FetchError> {
            text(name)
                .filter(|value| !value.is_empty())
                .map(Secret::new)
                .ok_or_else(|| FetchError::MissingCredential {
                    field: name.to_owned(),
                })
        };
        let mut oauth_parts: Option<OAuthParts> = None;
        let (method, fingerprint) = match &auth_spec.kind {
            AuthKind::Basic => {
                let username = secret("username")?;
                let password = secret("password")?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    username.expose(),
                    password.expose()
                ));
                let header = sensitive_value(&format!("Basic {encoded}"), "password")?;
                secrets.push(Secret::new(encoded));
                secrets.push(password.clone());
                (
                    AuthMethod::Basic { header },
                    CredentialFingerprint::of(&[&username, &password]),
                )
            }
            AuthKind::KeyBased { keys } => {
                let mut headers = Vec::with_capacity(keys.len());
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    // Only the first key is required by the spec; absent optional keys are skipped.
                    let Some(value) = text(&key.property).filter(|v| !v.is_empty()) else {
                        if headers.is_empty() && key == &keys[0] {
                            return Err(FetchError::MissingCredential {
                                field: key.property.clone(),
                            });
                        }
                        continue;
                    };
                    let name =
                        HeaderName::from_bytes(key.header_name.as_bytes()).map_err(|_| {
                            FetchError::Spec(format!(
                                "headerParamName {:?} of auth param {} is not a valid header name",
                                key.header_name, key.property
                            ))
                        })?;
                    headers.push((name, sensitive_value(&value, &key.property)?));
                    values.push(Secret::new(value));
                }
                secrets.extend(values.iter().cloned());
                let refs: Vec<&Secret> = values.iter().collect();
                (AuthMethod::Keys(headers), CredentialFingerprint::of(&refs))
            }
            AuthKind::OAuth2RefreshCode => {
                let access = text("accessToken").map(Secret::new).unwrap_or_default();
                let refresh = text("refreshToken")
                    .filter(|v| !v.is_empty())
                    .map(Secret::new);
                let token_url = text("accessTokenUrl").filter(|v| !v.is_empty());
                if access.is_empty() && (refresh.is_none() || token_url.is_none()) {
                    return Err(FetchError::MissingCredential {
                        field: "accessToken".to_owned(),
                    });
                }
                let client_id = text("clientId").filter(|v| !v.is_empty()).map(Secret::new);
                let client_secret = text("clientSecret")
                    .filter(|v| !v.is_empty())
                    .map(Secret::new);
                let expires_at = match params.get("expirationDate") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(parse_expiration(value).ok_or_else(|| {
                        FetchError::Spec(
                            "auth param expirationDate is not a date: expected RFC 3339, yyyy-MM-dd or epoch seconds/milliseconds"
                                .to_owned(),
                        )
                    })?),
                };
                // An empty access token is stale from the start: the first request refreshes.
                let expires_at = if access.is_empty() {
                    Some(DateTime::<Utc>::MIN_UTC)
                } else {
                    expires_at
                };
                // The fingerprint must survive token rotation: prefer the client credentials.
                let stable: Vec<&Secret> = match (&client_id, &client_secret, &refresh) {
                    (Some(id), Some(secret), _) => vec![id, secret],
                    (_, _, Some(refresh)) => vec![refresh],
                    _ => vec![&access],
                };
                let fingerprint = CredentialFingerprint::of(&stable);
                let client = match (&client_id, &client_secret) {
                    (Some(id), Some(secret)) => Some(CredentialFingerprint::of(&[id, secret])),
                    _ => None,
                };
                secrets.extend(
                    [Some(access.clone()), refresh.clone(), client_secret.clone()]
                        .into_iter()
                        .flatten(),
                );
                let tokens = Tokens {
                    access,
                    refresh,
                    expires_at,
                    lifetime: None,
                    generation: 0,
                };
                // Finished below, once the redactor (the state's first party) exists.
                oauth_parts = Some(OAuthParts {
                    tokens,
                    token_url,
                    client,
                    client_id,
                    client_secret,
                    on_rotate,
                });
                (AuthMethod::None, fingerprint)
            }
        };
        let mut secret_params: Vec<String> = secret_fields.to_vec();
        secret_params.extend(auth_spec.secret_fields.iter().cloned());
        let redactor = Redactor::new(secrets, secret_params);
        // The token state's first party is this auth: its redactor learns refreshed tokens,
        // its callback persists them.
        let method = match oauth_parts {
            Some(parts) => {
                let (state, membership) = TokenState::with_member(
                    parts.tokens,
                    parts.token_url,
                    parts.client,
                    parts.on_rotate.clone(),
                    &redactor,
                );
                AuthMethod::OAuth(Box::new(OAuth {
                    client_id: parts.client_id,
                    client_secret: parts.client_secret,
                    names: TokenRequestNames::from_params(params),
                    on_rotate: parts.on_rotate,
                    state,
                    _membership: membership,
                }))
            }
            None => method,
        };
        Ok(Auth {
            inner: Arc::new(AuthInner {
                method,
                fingerprint,
                redactor,
                test_url: test_url_of(auth_spec, params),
                named_secrets,
            }),
        })
    }

    /// The fingerprint of these credentials (for the limiter registry).
    pub fn fingerprint(&self) -> CredentialFingerprint {
        self.inner.fingerprint
    }

    /// The redactor that knows these credentials (and every refreshed token).
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The secret auth params by name.
    pub(crate) fn named_secrets(&self) -> &[(String, Secret)] {
        &self.inner.named_secrets
    }

    /// `authorizationTestUrl`, rendered; `Err` says why it could not be rendered.
    pub fn test_url(&self) -> Option<Result<&str, &str>> {
        self.inner
            .test_url
            .as_ref()
            .map(|url| url.as_deref().map_err(String::as_str))
    }

    /// Whether a rejected token can be replaced by a refresh.
    pub(crate) fn can_refresh(&self) -> bool {
        match &self.inner.method {
            AuthMethod::OAuth(oauth) => {
                oauth.state.token_url().is_some() && oauth.tokens().refresh.is_some()
            }
            _ => false,
        }
    }

    /// The auth headers for a request, refreshing a stale OAuth token first.
    pub(crate) async fn sign(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<SignedHeaders, FetchError> {
        match &self.inner.method {
            AuthMethod::None => Ok(SignedHeaders {
                headers: Vec::new(),
                generation: 0,
            }),
            AuthMethod::Basic { header } => Ok(SignedHeaders {
                headers: vec![(http::header::AUTHORIZATION, header.clone())],
                generation: 0,
            }),
            AuthMethod::Keys(headers) => Ok(SignedHeaders {
                headers: headers.clone(),
                generation: 0,
            }),
            AuthMethod::OAuth(oauth) => {
                let tokens = oauth.tokens();
                if oauth.is_stale(&tokens) && self.can_refresh() {
                    self.refresh(client, timeout, Some(tokens.generation), true)
                        .await?;
                }
                let tokens = oauth.tokens();
                let header =
                    sensitive_value(&format!("Bearer {}", tokens.access.expose()), "accessToken")?;
                Ok(SignedHeaders {
                    headers: vec![(http::header::AUTHORIZATION, header)],
                    generation: tokens.generation,
                })
            }
        }
    }

    /// Refreshes after the API rejected a token of `generation` (a 401), unless another request
    /// already replaced that token.
    pub(crate) async fn refresh_rejected(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        generation: u64,
    ) -> Result<(), FetchError> {
        self.refresh(client, timeout, Some(generation), false).await
    }

    /// Single-flight refresh. `seen`: the generation the caller found stale; when the current
    /// generation differs after taking the gate, someone else refreshed and this call returns.
    async fn refresh(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
        seen: Option<u64>,
        only_if_stale: bool,
    ) -> Result<(), FetchError> {
        let AuthMethod::OAuth(oauth) = &self.inner.method else {
            return Ok(());
        };
        let _gate = oauth.state.refresh_gate.lock().await;
        let current = oauth.tokens();
        if seen.is_some_and(|seen| seen != current.generation) {
            return Ok(());
        }
        if only_if_stale && !oauth.is_stale(&current) {
            return Ok(());
        }
        let (Some(token_url), Some(refresh_token)) = (oauth.state.token_url(), &current.refresh)
        else {
            return Err(FetchError::MissingCredential {
                field: "refreshToken".to_owned(),
            });
        };
        let redactor = &self.inner.redactor;
        let shown_url = redactor.url_str(token_url);
        let mut fields: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            (
                oauth.names.refresh_token_field.as_str(),
                refresh_token.expose(),
            ),
        ];
        if let Some(id) = &oauth.client_id {
            fields.push((oauth.names.client_id_param.as_str(), id.expose()));
        }
        if let Some(secret) = &oauth.client_secret {
            fields.push((oauth.names.client_secret_param.as_str(), secret.expose()));
        }
        let mut url = url::Url::parse(token_url).map_err(|err| {
            FetchError::Spec(format!("accessTokenUrl {shown_url:?} is not a URL: {err}"))
        })?;
        let request = match oauth.names.method {
            HttpMethod::Get => {
                url.query_pairs_mut().extend_pairs(&fields);
                client.get(url)
            }
            HttpMethod::Post => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&fields)
                    .finish();
                client
                    .post(url)
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
            }
        };
        tracing::debug!(token_url = %shown_url, "refreshing the oauth2 access token");
        let response = request
            .header(http::header::ACCEPT, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| FetchError::Refresh {
                url: shown_url.clone(),
                detail: redactor.text(&err.without_url().to_string()),
                retryable: true,
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|err| FetchError::Refresh {
            url: shown_url.clone(),
            detail: redactor.text(&err.without_url().to_string()),
            retryable: true,
        })?;
        if status.is_redirection() {
            // The request carries the refresh token and the client secret: it goes to the
            // configured URL only, never where a redirect points.
            return Err(FetchError::Refresh {
                url: shown_url,
                detail: format!(
                    "http status {}: the token endpoint redirects, and token requests do not follow redirects; set accessTokenUrl to the final URL",
                    status.as_u16()
                ),
                retryable: false,
            });
        }
        if !status.is_success() {
            return Err(FetchError::Refresh {
                url: shown_url,
                detail: format!(
                    "http status {}: {}",
                    status.as_u16(),
                    redactor.body_head(&body)
                ),
                retryable: status.is_server_error(),
            });
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|err| FetchError::Refresh {
            url: shown_url.clone(),
            detail: format!("the token response is not json: {err}"),
            retryable: false,
        })?;
        let Some(access) = answer
            .get(&oauth.names.access_token_field)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(FetchError::Refresh {
                url: shown_url,
                detail: format!(
                    "the token response has no {:?} field",
                    oauth.names.access_token_field
                ),
                retryable: false,
            });
        };
        let rotated_refresh = answer
            .get(&oauth.names.refresh_token_field)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        let lifetime = answer
            .get(&oauth.names.expire_in_field)
            .and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            });
        // A lifetime too long for a `Duration` or a date (`expires_in: 1e30`) is no expiry: the
        // token is used until the API rejects it, and a 401 refreshes it then.
        let lifetime = lifetime.and_then(|s| Duration::try_from_secs_f64(s).ok());
        let expires_at = lifetime
            .and_then(|l| chrono::Duration::from_std(l).ok())
            .and_then(|l| Utc::now().checked_add_signed(l));
        let lifetime = lifetime.filter(|_| expires_at.is_some());
        let access = Secret::new(access);
        redactor.add_secret(&access);
        if let Some(refresh) = &rotated_refresh {
            redactor.add_secret(refresh);
        }
        let rotated = RotatedTokens {
            access_token: access.clone(),
            refresh_token: rotated_refresh.clone(),
            expires_at,
        };
        tracing::info!(token_url = %shown_url, rotated_refresh_token = rotated.refresh_token.is_some(), "oauth2 access token refreshed");
        // Every run on this grant learns the tokens; each persisting party is called once.
        oauth
            .state
            .rotate(access, rotated_refresh, lifetime, &rotated);
        Ok(())
    }
}

impl OAuth {
    fn tokens(&self) -> Tokens {
        self.state.tokens()
    }

    fn is_stale(&self, tokens: &Tokens) -> bool {
        let Some(expires_at) = tokens.expires_at else {
            return false;
        };
        let margin = tokens
            .lifetime
            .map_or(MAX_REFRESH_MARGIN, |l| (l / 10).min(MAX_REFRESH_MARGIN));
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        let now = Utc::now();
        now.checked_add_signed(margin).unwrap_or(now) >= expires_at
    }
}

impl TokenCallback {
    /// A callback of the party `key` (callbacks with equal keys persist to the same place).
    pub fn new(
        key: impl Into<String>,
        call: impl Fn(&RotatedTokens) + Send + Sync + 'static,
    ) -> Self {
        Self {
            key: key.into(),
            call: Arc::new(call),
        }
    }

    /// The persisting party's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Hands `tokens` to the party.
    pub fn call(&self, tokens: &RotatedTokens) {
        (self.call)(tokens);
    }
}

impl std::fmt::Debug for TokenCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCallback")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner.method {
            AuthMethod::None => "none".to_owned(),
            AuthMethod::Basic { .. } => "basic".to_owned(),
            AuthMethod::Keys(headers) => {
                let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
                format!("keys in headers {names:?}")
            }
            AuthMethod::OAuth(oauth) => {
                let tokens = oauth.tokens();
                format!(
                    "oauth2 (access token ***, refresh token {}, expires {:?}, generation {})",
                    if tokens.refresh.is_some() {
                        "***"
                    } else {
                        "none"
                    },
                    tokens.expires_at,
                    tokens.generation
                )
            }
        };
        f.debug_struct("Auth")
            .field("kind", &kind)
            .field("fingerprint", &"<keyed hash>")
            .field(
                "test_url",
                &self
                    .test_url()
                    .map(|url| url.map(|u| self.inner.redactor.url_str(u))),
            )
            .finish()
    }
}

/// Calls `authorizationTestUrl` with the credentials (refreshing once on a 401). `host` resolves
/// a relative test URL.
pub async fn test_connection(
    client: &reqwest::Client,
    auth: &Auth,
    host: Option<&str>,
    timeout: Duration,
) -> Result<ConnectionCheck, FetchError> {
    let test_url = match auth.test_url() {
        None => return Ok(ConnectionCheck::NoTestUrl),
        Some(Ok(url)) => url,
        Some(Err(problem)) => {
            return Err(FetchError::Spec(format!("authorizationTestUrl: {problem}")));
        }
    };
    let redactor = auth.redactor();
    let url = match (url::Url::parse(test_url), host) {
        (Ok(url), _) => url,
        (Err(_), Some(host)) => url::Url::parse(&format!(
            "{}/{}",
            host.trim_end_matches('/'),
            test_url.trim_start_matches('/')
        ))
        .map_err(|err| {
            FetchError::Spec(format!(
                "authorizationTestUrl {:?} is not a URL: {err}",
                redactor.url_str(test_url)
            ))
        })?,
        (Err(err), None) => {
            return Err(FetchError::Spec(format!(
                "authorizationTestUrl {:?} is not a URL: {err}",
                redactor.url_str(test_url)
            )));
        }
    };
    let shown = redactor.url(&url);
    let mut refreshed = false;
    loop {
        let signed = auth.sign(client, timeout).await?;
        let mut request = client.get(url.clone()).timeout(timeout);
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|err| {
            if err.is_timeout() {
                FetchError::Timeout {
                    url: shown.clone(),
                    timeout,
                }
            } else {
                let detail = redactor.text(&err.without_url().to_string());
                FetchError::Connect {
                    url: shown.clone(),
                    detail,
                }
            }
        })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(ConnectionCheck::Passed { status });
        }
        if status == 401 && !refreshed && auth.can_refresh() {
            refreshed = true;
            auth.refresh_rejected(client, timeout, signed.generation)
                .await?;
            continue;
        }
        let body = response.bytes().await.unwrap_or_default();
        let body_head = redactor.body_head(&body);
        return Err(if status == 401 || status == 403 {
            FetchError::Unauthorized {
                url: shown,
                status,
                body_head,
            }
        } else {
            FetchError::Status {
                url: shown,
                status,
                body_head,
            }
        });
    }
}

/// `authorizationTestUrl` from the params, else the default of its property in the auth
/// schema (the Mailchimp spec defaults it to `${host}/3.0/ping`), rendered from the auth params.
fn test_url_of(
    auth_spec: &AuthSpec,
    params: &Map<String, Value>,
) -> Option<Result<String, String>> {
    let written = param_text(params, "authorizationTestUrl")
        .filter(|v| !v.is_empty())
        .or_else(|| {
            auth_spec
                .params_schema
                .pointer("/properties/authorizationTestUrl/default")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })?;
    let template = tributary_spec::Template::parse(&written);
    let no_source_params = Map::new();
    let no_env = |_: &str| None;
    let ctx = tributary_spec::RenderContext::new(&no_source_params, params, &no_env);
    Some(
        template
            .render(&ctx, tributary_spec::RenderMode::Raw)
            .map_err(|err| err.to_string()),
    )
}

fn param_text(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn sensitive_value(value: &str, field: &str) -> Result<HeaderValue, FetchError> {
    let mut header = HeaderValue::from_str(value)
        .map_err(|_| FetchError::Spec(format!("auth param {field} cannot be sent in a header: it holds a line break or a non-visible character")))?;
    header.set_sensitive(true);
    Ok(header)
}

/// `expirationDate`: RFC 3339, `yyyy-MM-dd` (end of that day is not assumed: midnight UTC), or
/// epoch seconds / milliseconds as a number or numeric string.
fn parse_expiration(value: &Value) -> Option<DateTime<Utc>> {
    let epoch = |n: f64| -> Option<DateTime<Utc>> {
        if !n.is_finite() {
            return None;
        }
        // Numbers past year 5138 in seconds are read as milliseconds. The cast saturates, and a
        // saturated value is past chrono's range, so it is refused, not wrapped.
        let seconds = if n > 1e11 { n / 1000.0 } else { n };
        DateTime::from_timestamp(seconds as i64, 0)
    };
    match value {
        Value::Number(n) => epoch(n.as_f64()?),
        Value::String(text) => {
            let text = text.trim();
            if let Ok(at) = DateTime::parse_from_rfc3339(text) {
                return Some(at.with_timezone(&Utc));
            }
            if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                return day.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
            }
            epoch(text.parse::<f64>().ok()?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
