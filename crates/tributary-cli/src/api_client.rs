//! How `tributary flows` and `tributary runs` reach the API: over HTTP to the running daemon
//! when one holds the state directory (its `listen` address and the credentials of the config,
//! or the generated local credential), else an in-process API over the state directory — the
//! same handlers, so both paths answer alike.
//!
//! Invariants: the credentials are only ever sent as request headers, never printed; the
//! daemon path never touches the state directory (the daemon holds its lock).

use anyhow::Context as _;
use axum::body::Body;
use serde_json::Value;
use tower::ServiceExt as _;
use tributary_api::{ApiOptions, ApiState, FlowRegistry, OrgCredential};
use tributary_engine::DaemonConfig;
use tributary_state::StateError;

use crate::context::open_engine;

/// Where requests go.
#[derive(Debug)]
pub enum Api {
    /// The daemon that holds the state directory.
    Daemon {
        base: String,
        credential: OrgCredential,
    },
    /// An API over the state directory, in this process.
    Local {
        app: axum::Router,
        credential: OrgCredential,
    },
}

/// The sandbox `flows_dir` bundles (and so most flows) belong to.
const SANDBOX: &str = crate::serve::BUNDLE_SANDBOX;

/// Through the daemon when the state directory is locked by one, else in process.
pub fn connect(config: &DaemonConfig) -> anyhow::Result<Api> {
    let credential = crate::serve::api_auth(config)?
        .orgs
        .into_iter()
        .next()
        .context("no API credential in the config")?;
    match open_engine(config) {
        Ok(engine) => {
            let registry = FlowRegistry::default();
            let state = ApiState::try_new(
                engine,
                registry.clone(),
                ApiOptions {
                    auth: crate::serve::api_auth(config)?,
                    max_concurrent_runs: 1,
                    metrics_bearer_token: None,
                    shared_state: config.state.backend
                        == tributary_engine::config::StateBackend::Postgres,
                },
            )
            .context("loading the API's entities from state")?;
            for flow in tributary_api::scheduled_flows(&state) {
                registry.upsert(flow);
            }
            Ok(Api::Local {
                app: tributary_api::app(state),
                credential,
            })
        }
        Err(err) if is_in_use(&err) => {
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            tracing::debug!(%addr, "the state directory is held by a running daemon: asking its API");
            Ok(Api::Daemon {
                base: format!("http://{addr}"),
                credential,
            })
        }
        Err(err) => Err(err),
    }
}

fn is_in_use(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<StateError>(),
            Some(StateError::InUse { .. })
        )
    })
}

impl Api {
    /// Whether requests go to a running daemon.
    pub fn is_daemon(&self) -> bool {
        matches!(self, Api::Daemon { .. })
    }

    /// `method path` (path and query); the answer's status and JSON body (Null when empty).
    pub async fn call(&self, method: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        match self {
            Api::Daemon { base, credential } => {
                let client = tributary_fetch::http_client()?;
                let url = format!("{base}{path}");
                let method = axum::http::Method::from_bytes(method.as_bytes())
                    .with_context(|| format!("HTTP method {method}"))?;
                let response = client
                    .request(method, &url)
                    .header("authorization", format!("Bearer {}", credential.bearer_token))
                    .header("x-api-key", &credential.api_key)
                    .header("x-gw-ims-org-id", &credential.org_id)
                    .header("x-sandbox-name", SANDBOX)
                    .timeout(std::time::Duration::from_secs(60))
                    .send()
                    .await
                    .with_context(|| {
                        format!("asking the running daemon at {base} (the state directory is in use by it)")
                    })?;
                let status = response.status().as_u16();
                let bytes = response
                    .bytes()
                    .await
                    .with_context(|| format!("reading the daemon's answer to {path}"))?;
                Ok((status, parse_body(&bytes, path)?))
            }
            Api::Local { app, credential } => {
                let request = axum::http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(
                        "authorization",
                        format!("Bearer {}", credential.bearer_token),
                    )
                    .header("x-api-key", &credential.api_key)
                    .header("x-gw-ims-org-id", &credential.org_id)
                    .header("x-sandbox-name", SANDBOX)
                    .body(Body::empty())
                    .context("building an API request")?;
                let response = app
                    .clone()
                    .oneshot(request)
                    .await
                    .context("calling the in-process API")?;
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
                    .await
                    .context("reading the in-process API's answer")?;
                Ok((status, parse_body(&bytes, path)?))
            }
        }
    }

    /// `GET path`, which must answer 200.
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call("GET", path).await?;
        if status != 200 {
            anyhow::bail!("GET {path} answered {status}: {}", error_text(&body));
        }
        Ok(body)
    }
}

fn parse_body(bytes: &[u8], path: &str) -> anyhow::Result<Value> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).with_context(|| format!("the API's answer to {path} is not JSON"))
}

/// The message of an API error body (Flow Service or gateway shape).
pub fn error_text(body: &Value) -> String {
    body.pointer("/report/detailed-message")
        .or_else(|| body.get("message"))
        .or_else(|| body.get("title"))
        .and_then(Value::as_str)
        .map_or_else(|| body.to_string(), str::to_owned)
}
