//! HubSpot's OAuth token endpoint (`POST /oauth/v1/token`, and the dated `/oauth/2026-03/token`):
//! exchanges a configured client's refresh token for an access token that expires.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::render::json_response;
use super::{lock, Answer, SimState};

/// An OAuth app installed in the portal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// Scopes of the access tokens issued (`None`: every scope).
    pub scopes: Option<Vec<String>>,
}

/// The token routes; they need no bearer token and count against no limit.
pub fn routes(state: Arc<SimState>) -> Router {
    Router::new().route("/oauth/v1/token", post(token)).route("/oauth/2026-03/token", post(token)).with_state(state)
}

fn oauth_error(status: &str, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "status": status, "message": message, "correlationId": uuid::Uuid::new_v4().to_string() }),
    )
}

async fn token(State(state): State<Arc<SimState>>, body: Bytes) -> Answer {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if field("grant_type") != Some("refresh_token") {
        return Err(oauth_error("BAD_GRANT_TYPE", "grant_type must be refresh_token"));
    }
    let client = state.oauth_clients.iter().find(|c| Some(c.client_id.as_str()) == field("client_id"));
    let Some(client) = client.filter(|c| Some(c.client_secret.as_str()) == field("client_secret")) else {
        return Err(oauth_error("BAD_CLIENT_ID", "missing or unknown client_id or client_secret"));
    };
    if Some(client.refresh_token.as_str()) != field("refresh_token") {
        return Err(oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token"));
    }
    let lifetime = state.behaviour().oauth_token_lifetime_secs;
    let access = format!("oauth-{}", uuid::Uuid::new_v4());
    let expires_at = state.clock.now() + lifetime as i64 * 1000;
    lock(&state.tokens).issue(access.clone(), client.scopes.clone(), expires_at);
    *lock(&state.log).by_bucket.entry("oauth").or_default() += 1;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "refresh_token": client.refresh_token,
            "expires_in": lifetime,
            "token_type": "bearer",
            "token_use": "access_token",
            "hub_id": state.portal().portal_id,
        }),
    ))
}
