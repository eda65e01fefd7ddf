//! A small Snowflake client on reqwest speaking the connector protocol that Snowflake's own
//! drivers use (`/session/v1/login-request`, `/queries/v1/query-request`), not the SQL API v2,
//! which the emulator (fakesnow) does not serve.
//!
//! It owns: login with a password or a key pair (a JWT signed RS256 with the PKCS#8 key), a
//! small pool of sessions (a statement of a transaction must run on the session that began it,
//! so an operation checks one session out for its duration), one statement per request with
//! positional or array bindings (always typed `TEXT`: Snowflake converts to the column's type,
//! and the emulator cannot bind a NULL of any other type), result decoding for both formats
//! (`rowset`, JSON strings, and `rowsetBase64`, an Arrow IPC stream), a new login when a
//! session token expires, and the mapping of Snowflake's failures to [`Error`].
//!
//! Timestamps in Arrow results are Snowflake structs (`epoch`, `fraction`, `timezone`). The
//! emulator marks a NULL timestamp only in the struct's non-nullable children, which strict
//! Arrow decoding rejects (and `unsafe` skipping of validation is not allowed here), so hsync's
//! own queries read timestamps as `DATE_PART(EPOCH_MILLISECOND, ts)`; the struct form is still
//! decoded, a row whose struct or `epoch` is null being NULL.
//!
//! A large result comes back split: the answer holds the first rows and a list of `chunks`,
//! each a file on cloud storage (JSON rows without the enclosing brackets, or an Arrow IPC
//! stream, possibly gzipped) fetched with the answer's `chunkHeaders`, or with its `qrmk` key
//! as SSE-C headers. Every chunk is read, in order, and its row count checked, so a result is
//! never read partially; the headers, the key and the chunks' signed URLs are secrets and never
//! appear in an error or a log. Queries still running after the request (codes
//! 333333/333334) are refused with a clear error.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, DecimalType, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
};
use base64::Engine as _;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::destination::Error;

const KIND: crate::config::DestinationKind = crate::config::DestinationKind::Snowflake;
/// Sessions held open at most (each operation checks one out).
const MAX_SESSIONS: usize = 4;
/// A key-pair JWT lives this long (Snowflake accepts at most an hour).
const JWT_LIFETIME_SECS: i64 = 59 * 60;
/// Codes of an expired or unknown session token: log in again and retry.
const EXPIRED_SESSION_CODES: [&str; 4] = ["390112", "390114", "390104", "390111"];
/// Codes of a query still running when the request returned.
const QUERY_IN_PROGRESS_CODES: [&str; 2] = ["333333", "333334"];

/// How hsync proves who it is.
#[derive(Clone)]
pub enum Credentials {
    Password(String),
    /// Key-pair authentication: the PKCS#8 private key (PEM) and the public key's fingerprint.
    KeyPair {
        key: Arc<jsonwebtoken::EncodingKey>,
        fingerprint: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Password(_) => f.write_str("Password(***)"),
            Credentials::KeyPair { fingerprint, .. } => {
                f.debug_struct("KeyPair").field("key", &"***").field("fingerprint", fingerprint).finish()
            }
        }
    }
}

impl Credentials {
    /// Key-pair credentials from an unencrypted PKCS#8 PEM private key.
    pub fn key_pair(pem: &str) -> Result<Credentials, Error> {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        let unusable = |what: &str| {
            Error::Config(format!(
                "the Snowflake private key {what}; give an unencrypted PKCS#8 PEM file (openssl genrsa 2048 | \
                 openssl pkcs8 -topk8 -nocrypt) in destination.snowflake.private_key_file"
            ))
        };
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| unusable("is not a PKCS#8 RSA key"))?;
        let der = key.to_public_key().to_public_key_der().map_err(|_| unusable("has no usable public key"))?;
        let encoding =
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| unusable("cannot sign tokens"))?;
        Ok(Credentials::KeyPair { key: Arc::new(encoding), fingerprint: public_key_fingerprint(der.as_bytes()) })
    }
}

/// `SHA256:` and the base64 SHA-256 of the public key's DER (SubjectPublicKeyInfo), as
/// Snowflake shows it in `DESC USER` (`RSA_PUBLIC_KEY_FP`).
pub fn public_key_fingerprint(public_key_der: &[u8]) -> String {
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(public_key_der)))
}

/// The account part of a JWT's names: the account locator without region or cloud
/// (`xy12345.us-east-1` → `XY12345`), upper-case.
pub fn jwt_account(account: &str) -> String {
    account.split('.').next().unwrap_or(account).to_ascii_uppercase()
}

/// The claims of a key-pair login token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JwtClaims {
    /// `ACCOUNT.USER.SHA256:<fingerprint>`.
    pub iss: String,
    /// `ACCOUNT.USER`.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

impl JwtClaims {
    pub fn new(account: &str, user: &str, fingerprint: &str, now_secs: i64) -> JwtClaims {
        let qualified = format!("{}.{}", jwt_account(account), user.to_ascii_uppercase());
        JwtClaims {
            iss: format!("{qualified}.{fingerprint}"),
            sub: qualified,
            iat: now_secs,
            exp: now_secs + JWT_LIFETIME_SECS,
        }
    }
}

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://ACCOUNT.snowflakecomputing.com`, or an emulator's `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub account: String,
    pub user: String,
    pub database: String,
    pub schema: String,
    pub warehouse: Option<String>,
    pub role: Option<String>,
    pub credentials: Credentials,
}

/// A value of a result row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    /// Exact decimal text.
    Decimal(String),
    Float(f64),
    Bool(bool),
    /// Days since the Unix epoch.
    Date(i32),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

impl Value {
    /// The value as an integer (integers, and decimal or text forms of one).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::Decimal(s) | Value::Text(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value as text, whatever its type (`None` for NULL).
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Text(s) | Value::Decimal(s) => Some(s),
            Value::Int(v) => Some(v.to_string()),
            Value::Float(v) => Some(v.to_string()),
            Value::Bool(v) => Some(v.to_string()),
            Value::Date(v) => Some(v.to_string()),
            Value::Timestamp(v) => Some(v.to_string()),
        }
    }
}

/// A column of a result, as `rowtype` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultColumn {
    pub name: String,
    /// Snowflake's type: `fixed`, `text`, `timestamp_tz`, ...
    pub ty: String,
    pub scale: Option<i64>,
}

/// What a statement returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// The sum of a DML statement's counters whose names start with `prefix` (`number of rows
    /// inserted`, `number of rows updated`, ...; 0 when absent).
    pub fn count(&self, prefix: &str) -> u64 {
        let Some(row) = self.rows.first() else { return 0 };
        self.columns
            .iter()
            .zip(row)
            .filter(|(c, _)| c.name.starts_with(prefix))
            .filter_map(|(_, v)| v.as_i64())
            .map(|v| v.max(0) as u64)
            .sum()
    }

    /// Rows inserted plus rows updated (a MERGE reports both).
    pub fn written(&self) -> u64 {
        self.count("number of rows inserted") + self.count("number of rows updated")
    }
}

/// Values bound to a statement's `?` placeholders, all typed `TEXT`.
#[derive(Clone, Debug, Default)]
pub enum Bindings {
    #[default]
    None,
    /// One value per placeholder.
    Positional(Vec<Option<String>>),
    /// One column of values per placeholder: the statement runs once per row (a batch insert).
    Array(Vec<Vec<Option<String>>>),
}

impl Bindings {
    fn to_json(&self) -> Option<Json> {
        let entries: serde_json::Map<String, Json> = match self {
            Bindings::None => return None,
            Bindings::Positional(values) => values
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), json!({ "type": "TEXT", "value": v })))
                .collect(),
            Bindings::Array(columns) => columns
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), json!({ "type": "TEXT", "value": v })))
                .collect(),
        };
        Some(Json::Object(entries))
    }
}

/// A pool of logged-in sessions against one account, database and schema.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    idle: Arc<Mutex<Vec<String>>>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Session tokens are credentials: not shown.
        f.debug_struct("Client").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| Error::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            config: Arc::new(config),
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(MAX_SESSIONS)),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Checks out a session for one operation (logging one in when none is idle).
    pub async fn session(&self) -> Result<Session, Error> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable { kind: KIND, detail: "the session pool is closed".to_owned() })?;
        let idle = self.idle.lock().map_err(|_| poisoned())?.pop();
        let token = match idle {
            Some(token) => token,
            None => self.login().await?,
        };
        Ok(Session { client: self.clone(), token: Some(token), in_transaction: false, _permit: permit })
    }

    /// Runs one statement on a session of its own.
    pub async fn query(&self, sql: &str, bindings: &Bindings, action: &str) -> Result<QueryResult, Error> {
        self.session().await?.query(sql, bindings, action).await
    }

    /// One login, without keeping the session (for `hsync check`).
    pub async fn reach(&self) -> Result<(), Error> {
        let token = self.login().await?;
        self.logout(&token).await;
        Ok(())
    }

    async fn login(&self) -> Result<String, Error> {
        let c = &self.config;
        let mut data = json!({
            "CLIENT_APP_ID": "hsync",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "ACCOUNT_NAME": c.account,
            "LOGIN_NAME": c.user,
            // hsync quotes every identifier and relies on quoted names keeping their case.
            "SESSION_PARAMETERS": { "QUOTED_IDENTIFIERS_IGNORE_CASE": false },
        });
        match &c.credentials {
            Credentials::Password(password) => data["PASSWORD"] = json!(password),
            Credentials::KeyPair { key, fingerprint } => {
                let claims = JwtClaims::new(&c.account, &c.user, fingerprint, chrono::Utc::now().timestamp());
                let token =
                    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, key)
                        .map_err(|e| Error::Config(format!("cannot sign the Snowflake login token: {e}")))?;
                data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                data["TOKEN"] = json!(token);
            }
        }
        let mut query: Vec<(&str, &str)> = vec![("databaseName", &c.database), ("schemaName", &c.schema)];
        if let Some(w) = &c.warehouse {
            query.push(("warehouse", w));
        }
        if let Some(r) = &c.role {
            query.push(("roleName", r));
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        query.push(("request_id", &request_id));
        let response = self
            .http
            .post(format!("{}/session/v1/login-request", c.endpoint))
            .query(&query)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&json!({ "data": data }))
            .send()
            .await
            .map_err(unreachable)?;
        let body = read_body(response, "log in").await?;
        match body.get("data").and_then(|d| d.get("token")).and_then(Json::as_str) {
            Some(token) => Ok(token.to_owned()),
            None => Err(Error::Auth { kind: KIND, detail: "the login answer carries no session token".to_owned() }),
        }
    }

    async fn logout(&self, token: &str) {
        let _ = self
            .http
            .post(format!("{}/session", self.config.endpoint))
            .query(&[("delete", "true")])
            .header(reqwest::header::AUTHORIZATION, auth_header(token))
            .send()
            .await;
    }

    async fn send(&self, token: &str, sql: &str, bindings: &Bindings, action: &str) -> Result<Json, Error> {
        let mut body = json!({ "sqlText": sql, "asyncExec": false });
        if let Some(b) = bindings.to_json() {
            body["bindings"] = b;
        }
        let response = self
            .http
            .post(format!("{}/queries/v1/query-request", self.config.endpoint))
            .query(&[("requestId", uuid::Uuid::new_v4().to_string())])
            .header(reqwest::header::AUTHORIZATION, auth_header(token))
            .header(reqwest::header::ACCEPT, "application/snowflake")
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        read_body(response, action).await
    }
}

impl Client {
    /// Downloads every chunk of a large result, in order, appending its rows to `result`; a
    /// chunk whose row count is not the one listed fails the whole read.
    async fn read_chunks(&self, chunks: &Chunks, result: &mut QueryResult, action: &str) -> Result<(), Error> {
        let total = chunks.parts.len();
        for (i, (url, expected)) in chunks.parts.iter().enumerate() {
            let part = format!("part {} of {total} of the result", i + 1);
            let mut request = self.http.get(url);
            for (name, value) in &chunks.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            if !status.is_success() {
                // Neither the signed URL nor the body (which can echo it) is shown.
                return Err(Error::Unavailable {
                    kind: KIND,
                    detail: format!("HTTP {status} while downloading {part} while trying to {action}"),
                });
            }
            let bytes = response.bytes().await.map_err(unreachable)?;
            let rows = decode_chunk(&bytes, chunks.arrow, &result.columns, action)?;
            if rows.len() as u64 != *expected {
                return Err(corrupt(action, format!("{part} holds {} rows, not the {expected} listed", rows.len())));
            }
            result.rows.extend(rows);
        }
        Ok(())
    }
}

fn poisoned() -> Error {
    Error::Unavailable { kind: KIND, detail: "the session pool's lock is poisoned".to_owned() }
}

/// The header Snowflake (and the emulator, which slices it) expects, exactly.
fn auth_header(token: &str) -> String {
    format!("Snowflake Token=\"{token}\"")
}

fn unreachable(e: reqwest::Error) -> Error {
    // reqwest's messages name the URL, never a body.
    Error::Unavailable { kind: KIND, detail: e.without_url().to_string() }
}

/// A failure Snowflake reported in an answer's `code` and `message`.
#[derive(Debug)]
struct Failure {
    code: String,
    message: String,
}

/// Reads an answer: JSON with `success: true`, or the failure mapped to an [`Error`].
async fn read_body(response: reqwest::Response, action: &str) -> Result<Json, Error> {
    let status = response.status();
    let text = response.text().await.map_err(unreachable)?;
    let body: Option<Json> = serde_json::from_str(&text).ok();
    let failure = body.as_ref().and_then(|b| {
        (b.get("success") == Some(&Json::Bool(false))).then(|| Failure {
            code: b.get("code").and_then(Json::as_str).unwrap_or_default().to_owned(),
            message: b.get("message").and_then(Json::as_str).unwrap_or_default().to_owned(),
        })
    });
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::Throttled { kind: KIND, detail: format!("HTTP 429 while trying to {action}") });
    }
    if let Some(f) = failure {
        return Err(map_failure(&f, action));
    }
    if !status.is_success() {
        return Err(match status.as_u16() {
            401 | 403 => Error::Auth { kind: KIND, detail: format!("HTTP {status} while trying to {action}") },
            _ => Error::Unavailable { kind: KIND, detail: format!("HTTP {status} while trying to {action}") },
        });
    }
    match body {
        Some(b) if b.get("success") == Some(&Json::Bool(true)) => Ok(b),
        _ => Err(Error::Unavailable {
            kind: KIND,
            detail: format!("the answer to {action} is not Snowflake's JSON (HTTP {status})"),
        }),
    }
}

/// Whether an error says the session token is no longer valid (log in again).
fn expired(e: &Error) -> bool {
    matches!(e, Error::Auth { detail, .. } if EXPIRED_SESSION_CODES.iter().any(|c| detail.starts_with(c)))
}

/// Maps a Snowflake failure code to hsync's error classes. Data-conversion messages (codes
/// 100xxx) quote the rejected value, so only their code is kept.
fn map_failure(f: &Failure, action: &str) -> Error {
    let code = f.code.as_str();
    let detail = format!("{code}: {}", f.message);
    if code.starts_with("390") {
        return Error::Auth { kind: KIND, detail };
    }
    if QUERY_IN_PROGRESS_CODES.contains(&code) {
        return Error::Unavailable {
            kind: KIND,
            detail: format!("{code}: the statement was still running when Snowflake answered; hsync retries it"),
        };
    }
    if code.starts_with("100") {
        return Error::Schema {
            kind: KIND,
            table: String::new(),
            detail: format!(
                "{action}: Snowflake rejected a value (error {code}); the value is not shown, check the table's \
                 column types"
            ),
        };
    }
    match code {
        "003001" | "003011" => Error::Permission { kind: KIND, action: action.to_owned(), detail },
        "000603" | "000604" | "000605" | "000625" | "000630" => Error::Unavailable { kind: KIND, detail },
        _ => Error::Statement { kind: KIND, action: action.to_owned(), detail },
    }
}

/// A session checked out of the pool; returned to it when dropped, unless a transaction was
/// left open (then it is discarded, and Snowflake rolls the transaction back when it expires).
pub struct Session {
    client: Client,
    token: Option<String>,
    in_transaction: bool,
    _permit: OwnedSemaphorePermit,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("in_transaction", &self.in_transaction).finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            if !self.in_transaction {
                if let Ok(mut idle) = self.client.idle.lock() {
                    idle.push(token);
                }
            }
        }
    }
}

impl Session {
    /// Runs one statement; an expired session logs in again and retries, outside a
    /// transaction (inside one, the transaction is gone and the error is returned).
    pub async fn query(&mut self, sql: &str, bindings: &Bindings, action: &str) -> Result<QueryResult, Error> {
        let token = self.token.clone().unwrap_or_default();
        let body = match self.client.send(&token, sql, bindings, action).await {
            Err(e) if expired(&e) && !self.in_transaction => {
                let fresh = self.client.login().await?;
                self.token = Some(fresh.clone());
                self.client.send(&fresh, sql, bindings, action).await?
            }
            // The transaction died with the session: the whole operation must run again.
            Err(e) if expired(&e) => {
                return Err(Error::Unavailable {
                    kind: KIND,
                    detail: format!("the Snowflake session expired during a transaction while trying to {action}"),
                })
            }
            other => other?,
        };
        let mut result = decode_result(&body, action)?;
        if let Some(chunks) = result_chunks(&body, action)? {
            self.client.read_chunks(&chunks, &mut result, action).await?;
        }
        Ok(result)
    }

    /// Starts a transaction: the statements up to [`Session::commit`] apply together.
    pub async fn begin(&mut self) -> Result<(), Error> {
        self.query("BEGIN TRANSACTION", &Bindings::None, "start a transaction").await?;
        self.in_transaction = true;
        Ok(())
    }

    pub async fn commit(&mut self) -> Result<(), Error> {
        self.query("COMMIT", &Bindings::None, "commit a transaction").await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Rolls back an open transaction (after a failed statement).
    pub async fn rollback(&mut self) {
        if self.in_transaction && self.query("ROLLBACK", &Bindings::None, "roll back a transaction").await.is_ok() {
            self.in_transaction = false;
        }
    }
}

fn corrupt(action: &str, detail: impl Into<String>) -> Error {
    Error::Statement { kind: KIND, action: action.to_owned(), detail: detail.into() }
}

/// Decodes a successful answer's rows, whichever format they come in: the rows the answer
/// itself holds (see [`result_chunks`] for the rest of a large result).
pub fn decode_result(body: &Json, action: &str) -> Result<QueryResult, Error> {
    let data = body.get("data").ok_or_else(|| corrupt(action, "the answer has no data"))?;
    let columns: Vec<ResultColumn> = data
        .get("rowtype")
        .and_then(Json::as_array)
        .map(|types| {
            types
                .iter()
                .map(|t| ResultColumn {
                    name: t.get("name").and_then(Json::as_str).unwrap_or_default().to_owned(),
                    ty: t.get("type").and_then(Json::as_str).unwrap_or_default().to_ascii_lowercase(),
                    scale: t.get("scale").and_then(Json::as_i64),
                })
                .collect()
        })
        .unwrap_or_default();
    let format = data.get("queryResultFormat").and_then(Json::as_str).unwrap_or("json");
    let rows = if format.eq_ignore_ascii_case("arrow") {
        let encoded = data.get("rowsetBase64").and_then(Json::as_str).unwrap_or_default();
        decode_arrow(encoded, action)?
    } else {
        let rowset = data.get("rowset").and_then(Json::as_array).cloned().unwrap_or_default();
        decode_json_rowset(&rowset, &columns, action)?
    };
    Ok(QueryResult { columns, rows })
}

/// The rest of a large result: the chunks an answer lists, in order, and how to fetch them.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunks {
    /// Each chunk's signed URL and row count.
    pub parts: Vec<(String, u64)>,
    /// The headers every download sends (secrets).
    pub headers: Vec<(String, String)>,
    /// Arrow IPC streams rather than JSON rows.
    pub arrow: bool,
}

impl fmt::Debug for Chunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Signed URLs and the decryption key are secrets.
        f.debug_struct("Chunks").field("parts", &self.parts.len()).field("arrow", &self.arrow).finish_non_exhaustive()
    }
}

/// The chunks a successful answer lists, or `None` when it holds the whole result.
pub fn result_chunks(body: &Json, action: &str) -> Result<Option<Chunks>, Error> {
    let Some(data) = body.get("data") else { return Ok(None) };
    let listed = match data.get("chunks").and_then(Json::as_array) {
        Some(listed) if !listed.is_empty() => listed,
        _ => return Ok(None),
    };
    let parts = listed
        .iter()
        .map(|c| {
            let url =
                c.get("url").and_then(Json::as_str).ok_or_else(|| corrupt(action, "a result chunk has no url"))?;
            let rows = c
                .get("rowCount")
                .and_then(Json::as_u64)
                .ok_or_else(|| corrupt(action, "a result chunk has no row count"))?;
            Ok((url.to_owned(), rows))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let headers = match (data.get("chunkHeaders").and_then(Json::as_object), data.get("qrmk").and_then(Json::as_str)) {
        (Some(given), _) => {
            given.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        (None, Some(key)) => vec![
            ("x-amz-server-side-encryption-customer-algorithm".to_owned(), "AES256".to_owned()),
            ("x-amz-server-side-encryption-customer-key".to_owned(), key.to_owned()),
        ],
        (None, None) => Vec::new(),
    };
    let arrow = data.get("queryResultFormat").and_then(Json::as_str).is_some_and(|f| f.eq_ignore_ascii_case("arrow"));
    Ok(Some(Chunks { parts, headers, arrow }))
}

/// Decodes one downloaded chunk (gunzipped first when it is still gzip) by the result's format.
pub fn decode_chunk(
    bytes: &[u8],
    arrow: bool,
    columns: &[ResultColumn],
    action: &str,
) -> Result<Vec<Vec<Value>>, Error> {
    let mut unzipped = Vec::new();
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read as _;
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut unzipped)
            .map_err(|e| corrupt(action, format!("a result chunk does not gunzip: {e}")))?;
        &unzipped[..]
    } else {
        bytes
    };
    if arrow {
        return decode_arrow_stream(bytes.to_vec(), action);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt(action, "a JSON result chunk is not UTF-8"))?;
    // A JSON chunk is the rows' arrays separated by commas, without the enclosing brackets.
    let rows: Vec<Json> = serde_json::from_str(&format!("[{text}]"))
        .map_err(|e| corrupt(action, format!("a JSON result chunk does not parse: {e}")))?;
    decode_json_rowset(&rows, columns, action)
}

/// Decodes a JSON `rowset` (every value a string, or null) by the `rowtype`.
pub fn decode_json_rowset(rowset: &[Json], columns: &[ResultColumn], action: &str) -> Result<Vec<Vec<Value>>, Error> {
    rowset
        .iter()
        .map(|row| {
            let cells = row.as_array().ok_or_else(|| corrupt(action, "a result row is not an array"))?;
            cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let Some(text) = cell.as_str() else {
                        return Ok(Value::Null);
                    };
                    let column = columns.get(i);
                    let ty = column.map_or("text", |c| c.ty.as_str());
                    let scale = column.and_then(|c| c.scale).unwrap_or(0);
                    Ok(match ty {
                        "fixed" if scale == 0 => {
                            text.parse().map(Value::Int).unwrap_or(Value::Decimal(text.to_owned()))
                        }
                        "fixed" => Value::Decimal(text.to_owned()),
                        "real" => Value::Float(text.parse().map_err(|_| corrupt(action, "a REAL is not a number"))?),
                        "boolean" => Value::Bool(matches!(text, "1" | "true" | "TRUE")),
                        "date" => Value::Date(text.parse().map_err(|_| corrupt(action, "a DATE is not a day number"))?),
                        t if t.starts_with("timestamp") => Value::Timestamp(
                            json_timestamp_micros(text)
                                .ok_or_else(|| corrupt(action, "a timestamp is not `seconds.fraction [offset]`"))?,
                        ),
                        _ => Value::Text(text.to_owned()),
                    })
                })
                .collect()
        })
        .collect()
}

/// A JSON-format timestamp: `seconds.fraction`, followed for TIMESTAMP_TZ by a space and the
/// zone offset (which does not change the instant).
fn json_timestamp_micros(text: &str) -> Option<i64> {
    let instant = text.split(' ').next()?;
    let (secs, fraction) = instant.split_once('.').unwrap_or((instant, ""));
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    let mut digits: String = fraction.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    let micros: i64 = digits.parse().ok()?;
    Some(secs * 1_000_000 + if negative { -micros } else { micros })
}

/// Decodes `rowsetBase64`: an Arrow IPC stream (empty when there are no rows).
pub fn decode_arrow(encoded: &str, action: &str) -> Result<Vec<Vec<Value>>, Error> {
    if encoded.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| corrupt(action, "rowsetBase64 is not base64"))?;
    decode_arrow_stream(bytes, action)
}

/// Decodes an Arrow IPC stream of result rows.
fn decode_arrow_stream(bytes: Vec<u8>, action: &str) -> Result<Vec<Vec<Value>>, Error> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| corrupt(action, format!("the Arrow result does not decode: {e}")))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| {
            corrupt(
                action,
                format!(
                    "an Arrow result batch does not decode ({e}); a NULL timestamp from the emulator does this: \
                     select it as DATE_PART(EPOCH_MILLISECOND, column)"
                ),
            )
        })?;
        let schema = batch.schema();
        let decoded: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(array, field)| {
                let meta = |key: &str| field.metadata().get(key).cloned();
                decode_column(array.as_ref(), &meta("logicalType").unwrap_or_default(), meta("scale"), action)
            })
            .collect::<Result<_, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(decoded.iter().map(|column| column[r].clone()).collect());
        }
    }
    Ok(rows)
}

/// `value / 10^scale` as exact decimal text.
fn scaled_text(value: i128, scale: u32) -> String {
    if scale == 0 {
        return value.to_string();
    }
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded =
        if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if value < 0 { "-" } else { "" })
}

/// Decodes one column of an Arrow result by its type and Snowflake's field metadata
/// (`logicalType`, `scale`).
fn decode_column(array: &dyn Array, logical: &str, scale: Option<String>, action: &str) -> Result<Vec<Value>, Error> {
    let scale: u32 = scale.and_then(|s| s.parse().ok()).unwrap_or(0);
    let is_timestamp = logical.starts_with("TIMESTAMP");
    let n = array.len();
    let each = |f: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..n).map(|i| if array.is_null(i) { Value::Null } else { f(i) }).collect()
    };
    // Integers: plain (scale 0), scaled decimals (real Snowflake sends NUMBER(p,s) this way),
    // or timestamps in units of 10^-scale seconds.
    let integer = |v: i128| -> Value {
        if is_timestamp {
            Value::Timestamp(scale_to_micros(v, scale))
        } else if scale == 0 {
            i64::try_from(v).map(Value::Int).unwrap_or_else(|_| Value::Decimal(v.to_string()))
        } else {
            Value::Decimal(scaled_text(v, scale))
        }
    };
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; n],
        DataType::Utf8 => each(&|i| Value::Text(array.as_string::<i32>().value(i).to_owned())),
        DataType::LargeUtf8 => each(&|i| Value::Text(array.as_string::<i64>().value(i).to_owned())),
        DataType::Boolean => each(&|i| Value::Bool(array.as_boolean().value(i))),
        DataType::Int8 => each(&|i| integer(array.as_primitive::<Int8Type>().value(i).into())),
        DataType::Int16 => each(&|i| integer(array.as_primitive::<Int16Type>().value(i).into())),
        DataType::Int32 => each(&|i| integer(array.as_primitive::<Int32Type>().value(i).into())),
        DataType::Int64 => each(&|i| integer(array.as_primitive::<Int64Type>().value(i).into())),
        DataType::Float64 => each(&|i| Value::Float(array.as_primitive::<Float64Type>().value(i))),
        DataType::Date32 => each(&|i| Value::Date(array.as_primitive::<Date32Type>().value(i))),
        DataType::Decimal128(p, s) => {
            let (p, s) = (*p, *s);
            each(&|i| {
                Value::Decimal(<Decimal128Type as DecimalType>::format_decimal(
                    array.as_primitive::<Decimal128Type>().value(i),
                    p,
                    s,
                ))
            })
        }
        DataType::Struct(_) if is_timestamp => decode_timestamp_struct(array.as_struct(), scale, action)?,
        other => {
            return Err(corrupt(
                action,
                format!("a result column has the Arrow type {other}, which hsync does not read"),
            ))
        }
    })
}

/// `value` in units of 10^-scale seconds, as microseconds.
fn scale_to_micros(value: i128, scale: u32) -> i64 {
    let micros = if scale >= 6 { value / 10_i128.pow(scale - 6) } else { value * 10_i128.pow(6 - scale) };
    micros as i64
}

/// Snowflake's timestamp structs: `{epoch (seconds), fraction (nanoseconds)[, timezone]}`, or
/// `{epoch (units of 10^-scale s), timezone}`. The zone does not change the instant. A row
/// whose struct or epoch is null is NULL.
fn decode_timestamp_struct(s: &arrow::array::StructArray, scale: u32, action: &str) -> Result<Vec<Value>, Error> {
    let epoch = s
        .column_by_name("epoch")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| corrupt(action, "a timestamp struct has no int64 epoch"))?;
    let fraction = s.column_by_name("fraction").and_then(|c| c.as_primitive_opt::<Int32Type>());
    Ok((0..s.len())
        .map(|i| {
            if s.is_null(i) || epoch.is_null(i) {
                return Value::Null;
            }
            let e = i128::from(epoch.value(i));
            match fraction {
                Some(f) if !f.is_null(i) => Value::Timestamp((e * 1_000_000 + i128::from(f.value(i)) / 1_000) as i64),
                Some(_) => Value::Timestamp((e * 1_000_000) as i64),
                None => Value::Timestamp(scale_to_micros(e, scale)),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_claims_name_the_account_user_and_key() {
        let claims = JwtClaims::new("xy12345.us-east-1", "hsync_loader", "SHA256:abc=", 1_700_000_000);
        assert_eq!(claims.sub, "XY12345.HSYNC_LOADER");
        assert_eq!(claims.iss, "XY12345.HSYNC_LOADER.SHA256:abc=");
        assert_eq!(claims.exp - claims.iat, 59 * 60);
    }

    #[test]
    fn key_pair_tokens_verify_with_the_public_key_and_carry_its_fingerprint() {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate a key");
        let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
        let public_der = key.to_public_key().to_public_key_der().expect("der");
        let credentials = Credentials::key_pair(&pem).expect("key pair");
        let Credentials::KeyPair { key: encoding, fingerprint } = &credentials else { panic!("not a key pair") };
        // The fingerprint is base64(SHA-256(DER)), as `DESC USER` shows it.
        let digest = Sha256::digest(public_der.as_bytes());
        assert_eq!(fingerprint, &format!("SHA256:{}", base64::engine::general_purpose::STANDARD.encode(digest)));
        assert_eq!(fingerprint.len(), "SHA256:".len() + 44);

        let claims = JwtClaims::new("acme", "loader", fingerprint, chrono::Utc::now().timestamp());
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let token = jsonwebtoken::encode(&header, &claims, encoding).expect("sign");
        let public_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).expect("public pem");
        let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("decoding key");
        let verified = jsonwebtoken::decode::<JwtClaims>(
            &token,
            &decoding,
            &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256),
        )
        .expect("the token verifies with the public key");
        assert_eq!(verified.claims.iss, format!("ACME.LOADER.{fingerprint}"));
        assert_eq!(verified.claims.sub, "ACME.LOADER");
        assert_eq!(verified.header.alg, jsonwebtoken::Algorithm::RS256);

        let shown = format!("{credentials:?}");
        assert!(!shown.contains("PRIVATE") && shown.contains("***"), "{shown}");
        assert_eq!(format!("{:?}", Credentials::Password("hunter2".into())), "Password(***)");
    }

    #[test]
    fn a_key_that_is_not_pkcs8_is_a_config_error() {
        let e = Credentials::key_pair("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n").unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
    }

    #[test]
    fn json_rowsets_decode_by_rowtype() {
        let columns: Vec<ResultColumn> = [("n", "fixed", 0), ("d", "fixed", 2), ("t", "text", 0), ("b", "boolean", 0)]
            .iter()
            .map(|(name, ty, scale)| ResultColumn { name: (*name).into(), ty: (*ty).into(), scale: Some(*scale) })
            .chain([ResultColumn { name: "ts".into(), ty: "timestamp_tz".into(), scale: Some(9) }])
            .collect();
        let rowset =
            vec![json!(["42", "1.50", "x", "1", "1704067200.123456789 1440"]), json!([null, null, null, null, null])];
        let rows = decode_json_rowset(&rowset, &columns, "test").unwrap();
        assert_eq!(
            rows[0],
            vec![
                Value::Int(42),
                Value::Decimal("1.50".into()),
                Value::Text("x".into()),
                Value::Bool(true),
                Value::Timestamp(1_704_067_200_123_456)
            ]
        );
        assert!(rows[1].iter().all(|v| *v == Value::Null));
        assert_eq!(json_timestamp_micros("-1.5"), Some(-1_500_000));
    }

    #[test]
    fn chunk_lists_carry_their_headers_or_the_sse_key_and_hide_both() {
        let body = json!({"success": true, "data": {
            "rowtype": [], "queryResultFormat": "json", "rowset": [],
            "qrmk": "c2VjcmV0LWtleQ==",
            "chunks": [{"url": "https://s3.example/1?sig=abc", "rowCount": 2}, {"url": "https://s3.example/2?sig=def", "rowCount": 1}],
        }});
        let chunks = result_chunks(&body, "read").unwrap().expect("chunks");
        assert_eq!(
            chunks.parts,
            [("https://s3.example/1?sig=abc".to_owned(), 2), ("https://s3.example/2?sig=def".to_owned(), 1)]
        );
        assert!(!chunks.arrow);
        assert!(chunks
            .headers
            .contains(&("x-amz-server-side-encryption-customer-key".into(), "c2VjcmV0LWtleQ==".into())));
        assert!(chunks.headers.contains(&("x-amz-server-side-encryption-customer-algorithm".into(), "AES256".into())));
        let shown = format!("{chunks:?}");
        assert!(!shown.contains("sig=") && !shown.contains("c2VjcmV0"), "{shown}");

        let mut given = body;
        given["data"]["chunkHeaders"] = json!({"x-custom": "v"});
        given["data"]["queryResultFormat"] = json!("arrow");
        let chunks = result_chunks(&given, "read").unwrap().expect("chunks");
        assert_eq!(chunks.headers, [("x-custom".to_owned(), "v".to_owned())], "chunkHeaders win over qrmk");
        assert!(chunks.arrow);

        let whole = json!({"success": true, "data": {"rowtype": [], "rowset": [], "chunks": []}});
        assert_eq!(result_chunks(&whole, "read").unwrap(), None);
        let broken = json!({"data": {"chunks": [{"rowCount": 1}]}});
        assert!(result_chunks(&broken, "read").is_err());
    }

    #[test]
    fn json_and_arrow_chunks_decode_gzipped_or_not() {
        use std::io::Write as _;
        let columns = vec![
            ResultColumn { name: "n".into(), ty: "fixed".into(), scale: Some(0) },
            ResultColumn { name: "t".into(), ty: "text".into(), scale: None },
        ];
        let json_chunk = br#"["1","a"],
["2",null]"#;
        let expected = vec![vec![Value::Int(1), Value::Text("a".into())], vec![Value::Int(2), Value::Null]];
        assert_eq!(decode_chunk(json_chunk, false, &columns, "read").unwrap(), expected);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json_chunk).unwrap();
        assert_eq!(decode_chunk(&gz.finish().unwrap(), false, &columns, "read").unwrap(), expected);
        assert!(decode_chunk(b"[\"1\"", false, &columns, "read").is_err());

        let batch = arrow::record_batch::RecordBatch::try_from_iter([
            ("n", Arc::new(arrow::array::Int64Array::from(vec![Some(1), Some(2)])) as arrow::array::ArrayRef),
            ("t", Arc::new(arrow::array::StringArray::from(vec![Some("a"), None])) as arrow::array::ArrayRef),
        ])
        .unwrap();
        let mut stream = Vec::new();
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut stream, &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        assert_eq!(decode_chunk(&stream, true, &columns, "read").unwrap(), expected);
    }

    #[test]
    fn dml_counters_sum_by_name() {
        let result = QueryResult {
            columns: ["number of rows inserted", "number of rows updated"]
                .iter()
                .map(|n| ResultColumn { name: (*n).into(), ty: "fixed".into(), scale: Some(0) })
                .collect(),
            rows: vec![vec![Value::Int(2), Value::Int(3)]],
        };
        assert_eq!(result.written(), 5);
        assert_eq!(result.count("number of rows deleted"), 0);
    }

    #[test]
    fn scaled_integers_are_exact_decimals() {
        assert_eq!(scaled_text(150, 2), "1.50");
        assert_eq!(scaled_text(-5, 3), "-0.005");
        assert_eq!(scaled_text(7, 0), "7");
        assert_eq!(scale_to_micros(1_704_067_200_123, 3), 1_704_067_200_123_000);
        assert_eq!(scale_to_micros(1_704_067_200_123_456_789, 9), 1_704_067_200_123_456);
    }

    #[test]
    fn failures_map_to_classes_and_hide_values() {
        let f =
            |code: &str, message: &str| map_failure(&Failure { code: code.into(), message: message.into() }, "merge");
        assert!(matches!(f("390100", "Incorrect username or password"), Error::Auth { .. }));
        assert!(expired(&f("390112", "Your session has expired")));
        assert!(matches!(f("003001", "Insufficient privileges"), Error::Permission { .. }));
        let data = f("100038", "Numeric value 'secret-value' is not recognized");
        assert!(matches!(data, Error::Schema { .. }));
        assert!(!data.to_string().contains("secret-value"), "{data}");
        let missing = f("002003", "Table 'X' does not exist");
        assert!(matches!(missing, Error::Statement { .. }));
        assert!(missing.to_string().contains("002003"));
        assert!(matches!(f("333334", "running"), Error::Unavailable { .. }));
    }
}
