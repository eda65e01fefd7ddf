//! Where the bearer token comes from: a private-app or service-key token from an environment
//! variable or a file, or an OAuth refresh token exchanged for short-lived access tokens. Tokens
//! live in [`Secret`], whose `Debug` and `Display` never show them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::Error;
use crate::clock::Clock;

/// A secret string: shown as `***` everywhere, readable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Whether `name` can be an environment variable's name as hsync expects one: a letter or `_`
/// then letters, digits and `_`, at most 64 characters. A token pasted where a name belongs
/// (`pat-na1-...`) fails this, so it is never echoed back as a "variable name". The configuration
/// checks every setting that names a secret's variable with it.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How to obtain the bearer token.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// A private-app or service-key token in an environment variable.
    Env { var: String },
    /// A token in a file (re-read after a 401, so a rotated secret is picked up).
    File { path: PathBuf },
    /// A token handed over directly (embedded use and tests).
    Fixed { token: Secret, origin: String },
    /// OAuth: a refresh token exchanged at `POST /oauth/v1/token`.
    OAuth { client_id: String, client_secret: Secret, refresh_token: Secret },
}

impl TokenSource {
    /// Where the token comes from, for error messages (never the token).
    pub fn origin(&self) -> String {
        match self {
            TokenSource::Env { var } if is_env_var_name(var) => format!("environment variable {var}"),
            // Not a name: most likely the token itself, pasted where its variable belongs.
            TokenSource::Env { .. } => "the environment variable hubspot.token_env names".to_owned(),
            TokenSource::File { path } => format!("file {}", path.display()),
            TokenSource::Fixed { origin, .. } => origin.clone(),
            TokenSource::OAuth { client_id, .. } => format!("OAuth refresh token of client {client_id}"),
        }
    }

    fn read_static(&self) -> Result<Secret, Error> {
        let token = match self {
            TokenSource::Env { var } if !is_env_var_name(var) => {
                return Err(Error::Token(
                    "hubspot.token_env must be the NAME of an environment variable, not the token itself; \
                     put the token in a variable such as HUBSPOT_TOKEN and name that variable there"
                        .to_owned(),
                ))
            }
            TokenSource::Env { var } => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => Error::Token(format!(
                    "environment variable {var} is not set; export the private-app token there or set hubspot.token_file"
                )),
                std::env::VarError::NotUnicode(_) => Error::Token(format!(
                    "environment variable {var} holds bytes that are not text; export the private-app token there again"
                )),
            })?,
            TokenSource::File { path } => std::fs::read_to_string(path)
                .map_err(|e| Error::Token(format!("cannot read token file {}: {e}", path.display())))?,
            TokenSource::Fixed { token, .. } => return Ok(token.clone()),
            TokenSource::OAuth { .. } => unreachable!("OAuth tokens are not static"),
        };
        // A line break or spaces around the token (`echo` into a file, a copied line) are
        // not part of it.
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::Token(format!("{} is empty", self.origin())));
        }
        if let Some(problem) = malformed(token) {
            return Err(Error::Token(format!(
                "the token from {} {problem}; a HubSpot token is one word of printable ASCII: store it again \
                 as a single line holding the token alone",
                self.origin()
            )));
        }
        Ok(Secret(token.to_owned()))
    }
}

/// What makes a (trimmed) token unusable in an `Authorization` header, said without showing
/// any of it: its first character that is not printable ASCII, by kind and position.
fn malformed(token: &str) -> Option<String> {
    let total = token.chars().count();
    let (index, c) = token.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic())?;
    let kind = match c {
        '\n' | '\r' => "a line break",
        ' ' => "a space",
        '\t' => "a tab",
        c if c.is_whitespace() => "a non-ASCII space",
        c if c.is_control() => "a control character",
        _ => "a non-ASCII character",
    };
    Some(format!("has {kind} inside it (character {} of {total})", index + 1))
}

/// Refresh an OAuth access token this long before HubSpot says it expires.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: u64,
}

#[derive(Debug)]
struct Current {
    token: Secret,
    expires_at: Option<DateTime<Utc>>,
    refresh_token: Option<Secret>,
}

/// Supplies the bearer token for each request.
#[derive(Debug)]
pub struct Authenticator {
    source: TokenSource,
    oauth_url: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    current: tokio::sync::Mutex<Option<Current>>,
}

impl Authenticator {
    pub fn new(source: TokenSource, base_url: &str, http: reqwest::Client, clock: Arc<dyn Clock>) -> Authenticator {
        Authenticator {
            source,
            oauth_url: format!("{}/oauth/v1/token", base_url.trim_end_matches('/')),
            http,
            clock,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Where the token comes from, for errors.
    pub fn origin(&self) -> String {
        self.source.origin()
    }

    /// The token to send now, refreshing an OAuth token that is about to expire.
    pub async fn bearer(&self) -> Result<Secret, Error> {
        let mut current = self.current.lock().await;
        let now = self.clock.now();
        let fresh = current.as_ref().is_some_and(|c| {
            c.expires_at.is_none_or(|at| now + chrono::Duration::from_std(REFRESH_AHEAD).unwrap_or_default() < at)
        });
        if !fresh {
            *current = Some(self.obtain(current.take()).await?);
        }
        Ok(current.as_ref().expect("invariant: token obtained above").token.clone())
    }

    /// Called once after a 401: re-reads a file token or refreshes an OAuth token. Returns
    /// whether a retry can help.
    pub async fn renew_after_unauthorized(&self) -> Result<bool, Error> {
        match &self.source {
            TokenSource::Env { .. } | TokenSource::Fixed { .. } => Ok(false),
            TokenSource::File { .. } | TokenSource::OAuth { .. } => {
                let mut current = self.current.lock().await;
                let before = current.as_ref().map(|c| c.token.clone());
                let next = self.obtain(current.take()).await?;
                let changed = before.as_ref() != Some(&next.token) || matches!(self.source, TokenSource::OAuth { .. });
                *current = Some(next);
                Ok(changed)
            }
        }
    }

    async fn obtain(&self, previous: Option<Current>) -> Result<Current, Error> {
        let TokenSource::OAuth { client_id, client_secret, refresh_token } = &self.source else {
            return Ok(Current { token: self.source.read_static()?, expires_at: None, refresh_token: None });
        };
        // HubSpot may rotate the refresh token; use the newest one we were given.
        let refresh = previous.and_then(|p| p.refresh_token).unwrap_or_else(|| refresh_token.clone());
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
            ("refresh_token", refresh.expose()),
        ];
        let resp = self
            .http
            .post(&self.oauth_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::OAuth { status: 0, message: e.without_url().to_string() })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::OAuth { status: status.as_u16(), message: e.without_url().to_string() })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "no message".to_owned());
            return Err(Error::OAuth { status: status.as_u16(), message });
        }
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| Error::OAuth {
            status: status.as_u16(),
            message: format!("unreadable token response: {e}"),
        })?;
        tracing::info!(expires_in = parsed.expires_in, "refreshed the OAuth access token");
        Ok(Current {
            token: Secret(parsed.access_token),
            expires_at: Some(self.clock.now() + chrono::Duration::seconds(parsed.expires_in as i64)),
            refresh_token: Some(parsed.refresh_token.map_or(refresh, Secret)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_are_told_from_pasted_secrets() {
        assert!(is_env_var_name("HUBSPOT_TOKEN") && is_env_var_name("_x1"));
        assert!(!is_env_var_name("1X") && !is_env_var_name("") && !is_env_var_name(&"A".repeat(65)));
        assert!(!is_env_var_name("pat-na1-11112222-3333"));
    }

    #[test]
    fn secret_never_shows_in_debug_or_display() {
        let s = Secret::new("pat-na1-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.to_string(), "***");
        let source = TokenSource::OAuth {
            client_id: "client".into(),
            client_secret: Secret::new("shh-client"),
            refresh_token: Secret::new("shh-refresh"),
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("shh"), "{shown}");
    }

    #[test]
    fn missing_env_token_names_the_variable() {
        let err = TokenSource::Env { var: "HSYNC_TEST_SURELY_UNSET_TOKEN".into() }.read_static().unwrap_err();
        assert!(err.to_string().contains("HSYNC_TEST_SURELY_UNSET_TOKEN"), "{err}");
    }
}
