//! OAuth2 token state shared across runs: [`TokenState`] (the tokens, the refresh gate and the
//! parties that use them) and the process-wide [`AuthRegistry`].
//!
//! One grant, one state: every [`Auth`] of the process whose token URL, client credentials and
//! refresh token (or one of the refresh tokens it rotated away from) match an earlier one runs
//! on that one's state, so N parallel windows with an expired token make one token request,
//! and a rotating refresh token is never spent twice. The refresh token is part of the identity
//! on purpose: client id and secret name the OAuth app, not the user, and two flows of one app
//! for two accounts must never swap tokens.
//!
//! A party is whoever persists the tokens (the engine passes the flow's key in its
//! [`TokenCallback`]). After a rotation each distinct key is called once; a party that joins a
//! state that rotated past the tokens it brought is called once with the current ones, so its
//! stored copy is not left behind. The parties' redactors learn every token the state holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use super::{Auth, AuthInner, AuthMethod, OAuth, RotatedTokens, TokenCallback, Tokens};
use crate::error::Redactor;
use crate::limit::CredentialFingerprint;
use crate::secret::Secret;

/// The OAuth2 token states of the process, one per grant; clones share the registry.
#[derive(Clone, Default)]
pub struct AuthRegistry {
    states: Arc<Mutex<Vec<Arc<TokenState>>>>,
}

/// The tokens of one grant and who uses them.
pub(super) struct TokenState {
    pub(super) tokens: Mutex<Tokens>,
    /// Held while a refresh is in flight.
    pub(super) refresh_gate: tokio::sync::Mutex<()>,
    token_url: Option<String>,
    /// Client id and secret, hashed, when both are set.
    client: Option<CredentialFingerprint>,
    members: Mutex<Members>,
}

/// An [`Auth`]'s place among a state's parties; leaves when the Auth is dropped.
pub(super) struct Membership {
    id: u64,
    state: Weak<TokenState>,
}

#[derive(Default)]
struct Members {
    next_id: u64,
    entries: Vec<Member>,
    /// The generation each party key last persisted.
    persisted: HashMap<String, u64>,
    /// Fingerprints of every refresh token this state has held.
    known_refresh: HashSet<CredentialFingerprint>,
}

struct Member {
    id: u64,
    callback: Option<TokenCallback>,
    redactor: Redactor,
}

impl AuthRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The auth a run should use: `auth` itself, or, when it is an OAuth2 grant that an auth
    /// shared through this registry already holds, an auth on that one's token state (with
    /// `auth`'s redactor and rotation callback joined to it). Auths without a refreshable
    /// OAuth2 grant are returned as they are.
    pub fn share(&self, auth: &Auth) -> Auth {
        let AuthMethod::OAuth(oauth) = &auth.inner.method else {
            return auth.clone();
        };
        let brought = oauth.state.tokens();
        let Some(refresh) = &brought.refresh else {
            return auth.clone();
        };
        let refresh = CredentialFingerprint::of(&[refresh]);
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = states
            .iter()
            .find(|state| {
                state.holds_grant(
                    oauth.state.token_url.as_deref(),
                    oauth.state.client,
                    refresh,
                )
            })
            .cloned();
        let Some(state) = found else {
            states.push(oauth.state.clone());
            return auth.clone();
        };
        drop(states);
        if Arc::ptr_eq(&state, &oauth.state) {
            return auth.clone();
        }
        let membership = state.join(oauth.on_rotate.clone(), &auth.inner.redactor, &brought);
        Auth {
            inner: Arc::new(AuthInner {
                method: AuthMethod::OAuth(Box::new(OAuth {
                    names: oauth.names.clone(),
                    client_id: oauth.client_id.clone(),
                    client_secret: oauth.client_secret.clone(),
                    on_rotate: oauth.on_rotate.clone(),
                    state,
                    _membership: membership,
                })),
                fingerprint: auth.inner.fingerprint,
                redactor: auth.inner.redactor.clone(),
                test_url: auth.inner.test_url.clone(),
                named_secrets: auth.inner.named_secrets.clone(),
            }),
        }
    }

    /// How many grants the registry holds.
    pub fn len(&self) -> usize {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for AuthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRegistry")
            .field("grants", &self.len())
            .finish()
    }
}

impl TokenState {
    /// A state holding `tokens`, with its first party.
    pub(super) fn with_member(
        tokens: Tokens,
        token_url: Option<String>,
        client: Option<CredentialFingerprint>,
        callback: Option<TokenCallback>,
        redactor: &Redactor,
    ) -> (Arc<TokenState>, Membership) {
        let mut members = Members::default();
        if let Some(refresh) = &tokens.refresh {
            members
                .known_refresh
                .insert(CredentialFingerprint::of(&[refresh]));
        }
        let state = Arc::new(TokenState {
            tokens: Mutex::new(tokens.clone()),
            refresh_gate: tokio::sync::Mutex::new(()),
            token_url,
            client,
            members: Mutex::new(members),
        });
        let membership = state.join(callback, redactor, &tokens);
        (state, membership)
    }

    pub(super) fn token_url(&self) -> Option<&str> {
        self.token_url.as_deref()
    }

    pub(super) fn tokens(&self) -> Tokens {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Stores refreshed tokens and tells every party: each redactor learns them, each distinct
    /// callback key is called once.
    pub(super) fn rotate(
        &self,
        access: Secret,
        refresh: Option<Secret>,
        lifetime: Option<std::time::Duration>,
        rotated: &RotatedTokens,
    ) {
        let generation = {
            let mut tokens = self
                .tokens
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tokens.access = access;
            if let Some(refresh) = refresh {
                tokens.refresh = Some(refresh);
            }
            tokens.expires_at = rotated.expires_at;
            tokens.lifetime = lifetime;
            tokens.generation += 1;
            tokens.generation
        };
        let callbacks: Vec<TokenCallback> = {
            let mut members = self.members();
            if let Some(refresh) = &rotated.refresh_token {
                members
                    .known_refresh
                    .insert(CredentialFingerprint::of(&[refresh]));
            }
            let mut callbacks: Vec<TokenCallback> = Vec::new();
            for member in &members.entries {
                member.redactor.add_secret(&rotated.access_token);
                if let Some(refresh) = &rotated.refresh_token {
                    member.redactor.add_secret(refresh);
                }
                if let Some(callback) = &member.callback
                    && !callbacks.iter().any(|c| c.key() == callback.key())
                {
                    callbacks.push(callback.clone());
                }
            }
            for callback in &callbacks {
                members
                    .persisted
                    .insert(callback.key().to_owned(), generation);
            }
            callbacks
        };
        // Called outside the locks: a callback may take its time (it writes to state).
        for callback in callbacks {
            callback.call(rotated);
        }
    }

    /// Adds a party that brought `brought`; calls its callback with the current tokens when
    /// the state rotated past them and no party of its key persisted the current ones yet.
    fn join(
        self: &Arc<Self>,
        callback: Option<TokenCallback>,
        redactor: &Redactor,
        brought: &Tokens,
    ) -> Membership {
        let current = self.tokens();
        redactor.add_secret(&current.access);
        if let Some(refresh) = &current.refresh {
            redactor.add_secret(refresh);
        }
        let is_behind = brought.access != current.access || brought.refresh != current.refresh;
        let mut members = self.members();
        let id = members.next_id;
        members.next_id += 1;
        let mut catch_up = None;
        if let Some(callback) = &callback {
            let key = callback.key().to_owned();
            let persisted = members.persisted.get(&key).copied();
            if !is_behind && persisted.is_none() {
                members.persisted.insert(key, current.generation);
            } else if is_behind && persisted != Some(current.generation) {
                members.persisted.insert(key, current.generation);
                catch_up = Some(callback.clone());
            }
        }
        members.entries.push(Member {
            id,
            callback,
            redactor: redactor.clone(),
        });
        drop(members);
        if let Some(callback) = catch_up {
            callback.call(&RotatedTokens {
                access_token: current.access.clone(),
                refresh_token: current.refresh.clone(),
                expires_at: current.expires_at,
            });
        }
        Membership {
            id,
            state: Arc::downgrade(self),
        }
    }

    /// Whether a party with these credentials and this refresh token holds this state's grant.
    fn holds_grant(
        &self,
        token_url: Option<&str>,
        client: Option<CredentialFingerprint>,
        refresh: CredentialFingerprint,
    ) -> bool {
        token_url.is_some()
            && self.token_url.as_deref() == token_url
            && self.client == client
            && self.members().known_refresh.contains(&refresh)
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        // Plain data with no invariant a panic could break.
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state
                .members()
                .entries
                .retain(|member| member.id != self.id);
        }
    }
}
