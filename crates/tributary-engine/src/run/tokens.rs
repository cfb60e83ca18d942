//! OAuth 2 tokens of a flow kept in state: put into the bundle's parameters before a run, and
//! saved when the fetcher rotates them. Tokens are written only to the state (encrypted at rest
//! there), never logged.

use chrono::DateTime;
use serde_json::Value;
use tracing::warn;
use tributary_fetch::RotatedTokens;
use tributary_spec::FlowBundle;
use tributary_state::{Db, OAuthTokens};

/// Puts the stored tokens into the bundle's parameters, where the fetcher's auth reads them.
pub(super) fn apply_stored_tokens(bundle: &mut FlowBundle, tokens: &OAuthTokens) {
    let params = &mut bundle.base.params;
    params.insert(
        "accessToken".to_owned(),
        Value::String(tokens.access_token.clone()),
    );
    if let Some(refresh) = &tokens.refresh_token {
        params.insert("refreshToken".to_owned(), Value::String(refresh.clone()));
    }
    if let Some(expires_ms) = tokens.expires_at_ms
        && let Some(expires) = DateTime::from_timestamp_millis(expires_ms)
    {
        params.insert(
            "expirationDate".to_owned(),
            Value::String(expires.to_rfc3339()),
        );
    }
}

/// Saves tokens the fetcher rotated; a refresh token the server did not send again is kept.
pub(super) fn persist_tokens(db: &Db, key: &str, rotated: &RotatedTokens) {
    let previous = db.oauth_tokens(key).ok().flatten();
    let tokens = OAuthTokens {
        access_token: rotated.access_token.expose().to_owned(),
        refresh_token: rotated
            .refresh_token
            .as_ref()
            .map(|token| token.expose().to_owned())
            .or_else(|| previous.and_then(|p| p.refresh_token)),
        expires_at_ms: rotated.expires_at.map(|t| t.timestamp_millis()),
    };
    if let Err(err) = db.put_oauth_tokens(key, &tokens) {
        warn!(error = %err, "could not persist rotated oauth2 tokens");
    }
}
