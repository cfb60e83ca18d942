//! Credential checks and the OAuth2 token endpoint's state.
//!
//! Basic compares `user:pass`; API keys are looked up by header name (or, leniently, a query
//! parameter of that name); bearer tokens are looked up in a store of minted tokens with their
//! expiry. The token endpoint accepts `grant_type=refresh_token` with the refresh token and the
//! client credentials (as fields under the configured names, or as a Basic header) and, with
//! rotation on, retires the refresh token it was given. Token values are never logged.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::time::Instant;

use crate::config::{MockAuth, OAuth2};
use crate::dataset::mix64;
use crate::query::Params;

/// Auth mode plus the live token store.
#[derive(Debug)]
pub struct AuthState {
    mode: MockAuth,
    seed: u64,
    minted: AtomicU64,
    tokens: Mutex<TokenStore>,
}

/// Why a request was refused; `www_authenticate` is the challenge to send with the 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub reason: &'static str,
    pub www_authenticate: &'static str,
}

/// A successful token exchange.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_secs: u64,
}

/// A refused token exchange, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

#[derive(Debug, Default)]
struct TokenStore {
    /// Access token -> expiry.
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

impl AuthState {
    /// The initial access token (if any) expires `access_ttl` after now.
    pub fn new(mode: MockAuth, seed: u64) -> AuthState {
        let mut store = TokenStore::default();
        if let MockAuth::OAuth2(oauth) = &mode {
            let expires_at = Instant::now() + oauth.access_ttl;
            if !oauth.access_token.expose().is_empty() {
                store
                    .access
                    .insert(oauth.access_token.expose().to_string(), expires_at);
            }
            if !oauth.refresh_token.expose().is_empty() {
                store
                    .refresh
                    .insert(oauth.refresh_token.expose().to_string());
            }
        }
        AuthState {
            mode,
            seed,
            minted: AtomicU64::new(0),
            tokens: Mutex::new(store),
        }
    }

    /// Whether the request carries the configured credentials.
    pub fn check(&self, headers: &HeaderMap, params: &Params) -> Result<(), Denied> {
        match &self.mode {
            MockAuth::None => Ok(()),
            MockAuth::Basic { username, password } => {
                let Some(encoded) = authorization(headers, "basic") else {
                    return Err(Denied {
                        reason: "missing basic credentials",
                        www_authenticate: "Basic realm=\"mock\"",
                    });
                };
                let expected = format!("{username}:{}", password.expose());
                let matches = STANDARD
                    .decode(encoded.trim())
                    .is_ok_and(|decoded| decoded == expected.as_bytes());
                if matches {
                    Ok(())
                } else {
                    Err(Denied {
                        reason: "wrong basic credentials",
                        www_authenticate: "Basic realm=\"mock\"",
                    })
                }
            }
            MockAuth::ApiKey { keys } => {
                for (name, value) in keys {
                    let sent = headers
                        .get(name.as_str())
                        .and_then(|header| header.to_str().ok())
                        .or_else(|| params.get(name));
                    match sent {
                        None => {
                            return Err(Denied {
                                reason: "missing api key",
                                www_authenticate: "ApiKey realm=\"mock\"",
                            });
                        }
                        Some(sent) if sent != value.expose() => {
                            return Err(Denied {
                                reason: "wrong api key",
                                www_authenticate: "ApiKey realm=\"mock\"",
                            });
                        }
                        Some(_) => {}
                    }
                }
                Ok(())
            }
            MockAuth::OAuth2(_) => {
                let Some(token) = authorization(headers, "bearer") else {
                    return Err(Denied {
                        reason: "missing bearer token",
                        www_authenticate: "Bearer realm=\"mock\"",
                    });
                };
                let expires_at = self.lock().access.get(token.trim()).copied();
                match expires_at {
                    None => Err(Denied {
                        reason: "unknown bearer token",
                        www_authenticate: "Bearer realm=\"mock\", error=\"invalid_token\"",
                    }),
                    Some(expires_at) if Instant::now() >= expires_at => Err(Denied {
                        reason: "the access token expired",
                        www_authenticate: "Bearer realm=\"mock\", error=\"invalid_token\", error_description=\"expired\"",
                    }),
                    Some(_) => Ok(()),
                }
            }
        }
    }

    /// Exchanges a refresh token for a new access token (`fields` are the request's query and
    /// body fields merged).
    pub fn refresh(&self, headers: &HeaderMap, fields: &Params) -> Result<Grant, TokenError> {
        let MockAuth::OAuth2(oauth) = &self.mode else {
            return Err(TokenError {
                status: 404,
                error: "invalid_request",
                description: "this mock api is not configured for oauth2".into(),
            });
        };
        match fields.get("grant_type") {
            Some("refresh_token") => {}
            Some(other) => {
                return Err(TokenError {
                    status: 400,
                    error: "unsupported_grant_type",
                    description: format!(
                        "grant_type {other:?} is not supported, expected refresh_token"
                    ),
                });
            }
            None => {
                return Err(TokenError {
                    status: 400,
                    error: "invalid_request",
                    description: "grant_type is missing, expected refresh_token".into(),
                });
            }
        }
        self.check_client(oauth, headers, fields)?;
        let Some(refresh_token) = fields.get(&oauth.fields.refresh_token) else {
            return Err(TokenError {
                status: 400,
                error: "invalid_request",
                description: format!("field {} is missing", oauth.fields.refresh_token),
            });
        };
        let mut store = self.lock();
        if !store.refresh.contains(refresh_token) {
            return Err(TokenError {
                status: 400,
                error: "invalid_grant",
                description: "the refresh token is unknown or was already rotated".into(),
            });
        }
        let now = Instant::now();
        // Drop expired access tokens so the store stays small however long the server runs.
        store.access.retain(|_, expires_at| *expires_at > now);
        let access_token = self.mint("at");
        store
            .access
            .insert(access_token.clone(), now + oauth.access_ttl);
        let refresh_token = if oauth.rotate_refresh_token {
            store.refresh.remove(refresh_token);
            let rotated = self.mint("rt");
            store.refresh.insert(rotated.clone());
            rotated
        } else {
            refresh_token.to_string()
        };
        Ok(Grant {
            access_token,
            refresh_token,
            expires_in_secs: oauth.access_ttl.as_secs_f64().ceil() as u64,
        })
    }

    /// Makes every access token issued so far expire now.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for expires_at in self.lock().access.values_mut() {
            *expires_at = now;
        }
    }

    /// The OAuth2 settings when in that mode (for the token response field names).
    pub fn oauth(&self) -> Option<&OAuth2> {
        match &self.mode {
            MockAuth::OAuth2(oauth) => Some(oauth),
            _ => None,
        }
    }

    fn check_client(
        &self,
        oauth: &OAuth2,
        headers: &HeaderMap,
        fields: &Params,
    ) -> Result<(), TokenError> {
        let from_fields = fields.get(&oauth.fields.client_id).map(|id| {
            (
                id.to_string(),
                fields
                    .get(&oauth.fields.client_secret)
                    .unwrap_or_default()
                    .to_string(),
            )
        });
        let from_header = || {
            let decoded = STANDARD
                .decode(authorization(headers, "basic")?.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (id, secret) = text.split_once(':')?;
            Some((id.to_string(), secret.to_string()))
        };
        let Some((client_id, client_secret)) = from_fields.or_else(from_header) else {
            return Err(TokenError {
                status: 401,
                error: "invalid_client",
                description: format!(
                    "client credentials are missing, expected fields {} and {} or a basic header",
                    oauth.fields.client_id, oauth.fields.client_secret
                ),
            });
        };
        if client_id != oauth.client_id || client_secret != oauth.client_secret.expose() {
            return Err(TokenError {
                status: 401,
                error: "invalid_client",
                description: "wrong client id or client secret".into(),
            });
        }
        Ok(())
    }

    fn mint(&self, prefix: &str) -> String {
        let n = self.minted.fetch_add(1, Ordering::Relaxed) + 1;
        format!(
            "{prefix}_{n}_{:016x}",
            mix64(self.seed ^ n.rotate_left(17) ^ 0x746f_6b65_6e00_0000)
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenStore> {
        // A poisoned store only means a handler panicked mid-update; the maps are still valid.
        self.tokens
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The credentials after `Authorization: <scheme> ` (scheme matched case-insensitively).
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (sent_scheme, credentials) = value.split_once(' ')?;
    sent_scheme
        .eq_ignore_ascii_case(scheme)
        .then_some(credentials)
}
