//! The BigQuery REST API as hsync uses it: credentials, the crate `Client` (datasets, tables,
//! jobs.query, jobs.insert), multipart load jobs and getQueryResults pages built here (the crate
//! has no media upload, and cannot put `formatOptions` into a URL), and the mapping of every
//! failure to a classed [`Error`].
//!
//! Two checks matter on every call: a 200 answer can still carry errors (jobs.query puts them
//! in `errors`, load jobs in `status.errorResult`), and timestamps must come back as int64
//! microseconds (`formatOptions.useInt64Timestamp`), which is how both BigQuery and
//! bqemulator agree.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::data_format_options::DataFormatOptions;
use gcp_bigquery_client::model::dataset_reference::DatasetReference;
use gcp_bigquery_client::model::error_proto::ErrorProto;
use gcp_bigquery_client::model::get_query_results_response::GetQueryResultsResponse;
use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_configuration_query::JobConfigurationQuery;
use gcp_bigquery_client::model::job_reference::JobReference;
use gcp_bigquery_client::model::query_parameter::QueryParameter;
use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::yup_oauth2;

use super::KIND;
use crate::destination::Error;

/// The OAuth scope hsync asks for.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// How long one jobs.query or getQueryResults call waits for its job before answering.
const QUERY_WAIT_MS: i32 = 60_000;
/// How long hsync waits for one job in total.
const JOB_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How much of a BigQuery error message goes into hsync's own message.
const MESSAGE_CHARS: usize = 400;

type YupAuthenticator = yup_oauth2::authenticator::Authenticator<
    <yup_oauth2::DefaultHyperClientBuilder as yup_oauth2::HyperClientBuilder>::Connector,
>;

/// Where access tokens come from.
#[derive(Clone)]
pub enum Credentials {
    /// An emulator over plain HTTP, which checks no token.
    Emulator,
    /// A service-account key file or application default credentials, through yup-oauth2.
    Google(YupAuthenticator),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are never shown.
        match self {
            Credentials::Emulator => f.write_str("Credentials::Emulator"),
            Credentials::Google(_) => f.write_str("Credentials::Google(..)"),
        }
    }
}

#[async_trait]
impl Authenticator for Credentials {
    async fn access_token(&self) -> Result<String, BQError> {
        match self {
            Credentials::Emulator => Ok("emulator".to_owned()),
            Credentials::Google(auth) => auth.token(&[SCOPE]).await?.token().map(str::to_owned).ok_or(BQError::NoToken),
        }
    }
}

impl Credentials {
    /// A service-account key file when one is given, else application default credentials:
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, then the metadata server.
    pub async fn google(credentials_file: Option<&std::path::Path>) -> Result<Credentials, Error> {
        let auth_error = |what: String| Error::Auth { kind: KIND, detail: what };
        if let Some(path) = credentials_file {
            let key = yup_oauth2::read_service_account_key(path)
                .await
                .map_err(|e| auth_error(format!("cannot read the service-account key file {}: {e}", path.display())))?;
            let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key)
                .build()
                .await
                .map_err(|e| auth_error(format!("the service-account key file {} is unusable: {e}", path.display())))?;
            return Ok(Credentials::Google(auth));
        }
        if std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_none() {
            if let Some(path) = gcloud_adc_file().filter(|p| p.is_file()) {
                let secret = yup_oauth2::read_authorized_user_secret(&path).await.map_err(|e| {
                    auth_error(format!("cannot read gcloud's application default credentials {}: {e}", path.display()))
                })?;
                let auth = yup_oauth2::AuthorizedUserAuthenticator::builder(secret)
                    .build()
                    .await
                    .map_err(|e| auth_error(format!("gcloud's application default credentials are unusable: {e}")))?;
                return Ok(Credentials::Google(auth));
            }
        }
        let opts = yup_oauth2::ApplicationDefaultCredentialsFlowOpts::default();
        let built = match yup_oauth2::authenticator::ApplicationDefaultCredentialsAuthenticator::builder(opts).await {
            yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes::ServiceAccount(b) => b.build().await,
            yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes::InstanceMetadata(b) => b.build().await,
        };
        built.map(Credentials::Google).map_err(|e| {
            auth_error(format!(
                "no usable application default credentials ({e}); set destination.bigquery.credentials_file \
                 to a service-account key file"
            ))
        })
    }
}

fn gcloud_adc_file() -> Option<std::path::PathBuf> {
    let config = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".config").join("gcloud"),
    };
    Some(config.join("application_default_credentials.json"))
}

fn truncated(message: &str) -> String {
    if message.chars().count() <= MESSAGE_CHARS {
        message.to_owned()
    } else {
        format!("{}...", message.chars().take(MESSAGE_CHARS).collect::<String>())
    }
}

/// Classes a BigQuery error by its HTTP status and `reason`. Messages of `invalid` errors
/// (load jobs, casts) can quote a row's value, so only the reason is kept for them.
pub fn classify(action: &str, status: Option<i64>, reason: &str, message: &str) -> Error {
    let shown = if reason == "invalid" {
        "a value or the file was refused (reason invalid; the value is not shown)".to_owned()
    } else {
        format!("{} ({reason})", truncated(message))
    };
    let action = action.to_owned();
    match (status, reason) {
        (_, "rateLimitExceeded" | "quotaExceeded" | "jobRateLimitExceeded") | (Some(429), _) => {
            Error::Throttled { kind: KIND, detail: format!("{action}: {shown}") }
        }
        (Some(401), _) | (_, "authError") => Error::Auth { kind: KIND, detail: format!("{action}: {shown}") },
        (Some(403), _) | (_, "accessDenied") => Error::Permission { kind: KIND, action, detail: shown },
        (Some(500..=599), _) | (_, "backendError" | "internalError") => {
            Error::Unavailable { kind: KIND, detail: format!("{action}: {shown}") }
        }
        (_, "invalid") => Error::Schema { kind: KIND, table: String::new(), detail: format!("{action}: {shown}") },
        _ => Error::Statement { kind: KIND, action, detail: shown },
    }
}

/// Whether a failed call means the table or dataset does not exist.
pub fn is_not_found(e: &BQError) -> bool {
    matches!(e, BQError::ResponseError { error } if error.error.code == 404)
}

/// Whether a failed insert means the table or dataset exists already.
pub fn is_duplicate(e: &BQError) -> bool {
    matches!(e, BQError::ResponseError { error } if error.error.code == 409)
}

/// Maps a crate error raised while doing `action`.
pub fn from_bq(action: &str, e: BQError) -> Error {
    match e {
        BQError::ResponseError { error } => {
            let reason = error.error.errors.first().and_then(|r| r.get("reason")).cloned().unwrap_or_default();
            classify(action, Some(error.error.code), &reason, &error.error.message)
        }
        BQError::RequestError(e) if e.is_decode() => Error::Unavailable {
            kind: KIND,
            detail: format!("{action}: BigQuery answered with a body hsync cannot read ({e})"),
        },
        BQError::RequestError(e) => Error::Unavailable { kind: KIND, detail: format!("{action}: {e}") },
        BQError::SerializationError(e) => Error::Unavailable {
            kind: KIND,
            detail: format!("{action}: BigQuery answered with a body hsync cannot read ({e})"),
        },
        e @ (BQError::AuthError(_)
        | BQError::YupAuthError(_)
        | BQError::NoToken
        | BQError::InvalidServiceAccountKey(_)
        | BQError::InvalidServiceAccountAuthenticator(_)
        | BQError::InvalidApplicationDefaultCredentialsAuthenticator(_)
        | BQError::InvalidAuthorizedUserAuthenticator(_)
        | BQError::InvalidInstalledFlowAuthenticator(_)) => {
            Error::Auth { kind: KIND, detail: format!("{action}: cannot get an access token ({e})") }
        }
        other => Error::Statement { kind: KIND, action: action.to_owned(), detail: other.to_string() },
    }
}

/// The first error of a 200 answer, if any.
pub fn check_errors(action: &str, errors: Option<&[ErrorProto]>) -> Result<(), Error> {
    match errors.and_then(<[ErrorProto]>::first) {
        None => Ok(()),
        Some(e) => Err(classify(
            action,
            None,
            e.reason.as_deref().unwrap_or_default(),
            e.message.as_deref().unwrap_or("no message"),
        )),
    }
}

/// A named query parameter.
pub fn int_param(name: &str, value: i64) -> QueryParameter {
    scalar_param(name, "INT64", value.to_string())
}

pub fn string_param(name: &str, value: &str) -> QueryParameter {
    scalar_param(name, "STRING", value.to_owned())
}

fn scalar_param(name: &str, ty: &str, value: String) -> QueryParameter {
    QueryParameter {
        name: Some(name.to_owned()),
        parameter_type: Some(QueryParameterType { array_type: None, struct_types: None, r#type: ty.to_owned() }),
        parameter_value: Some(QueryParameterValue { array_values: None, struct_values: None, value: Some(value) }),
    }
}

pub fn int_array_param(name: &str, values: &[i64]) -> QueryParameter {
    let element = QueryParameterType { array_type: None, struct_types: None, r#type: "INT64".to_owned() };
    QueryParameter {
        name: Some(name.to_owned()),
        parameter_type: Some(QueryParameterType {
            array_type: Some(Box::new(element)),
            struct_types: None,
            r#type: "ARRAY".to_owned(),
        }),
        parameter_value: Some(QueryParameterValue {
            array_values: Some(
                values
                    .iter()
                    .map(|v| QueryParameterValue {
                        array_values: None,
                        struct_values: None,
                        value: Some(v.to_string()),
                    })
                    .collect(),
            ),
            struct_values: None,
            value: None,
        }),
    }
}

/// What a statement returned: rows of nullable strings, the DML count, and the result's
/// columns (empty for a statement that returns none).
#[derive(Debug, Default)]
pub struct QueryOutput {
    pub rows: Vec<Vec<Option<String>>>,
    pub affected: Option<u64>,
    pub fields: Vec<TableFieldSchema>,
}

fn row_values(row: gcp_bigquery_client::model::table_row::TableRow) -> Vec<Option<String>> {
    row.columns
        .unwrap_or_default()
        .into_iter()
        .map(|cell| match cell.value {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        })
        .collect()
}

/// The connection: the crate client plus what the crate lacks (uploads).
#[derive(Clone)]
pub struct Api {
    pub client: gcp_bigquery_client::Client,
    pub credentials: Arc<Credentials>,
    pub http: reqwest::Client,
    pub project: String,
    /// `{endpoint}/bigquery/v2`.
    pub api_base: String,
    pub upload_base: String,
    pub location: Option<String>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("project", &self.project)
            .field("upload_base", &self.upload_base)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A refused call's error body (`error.message`, `error.errors[0].reason`), classed.
fn http_failure(action: &str, status: reqwest::StatusCode, body: &str) -> Error {
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let reason = parsed.pointer("/error/errors/0/reason").and_then(|r| r.as_str()).unwrap_or_default();
    let message = parsed.pointer("/error/message").and_then(|r| r.as_str()).unwrap_or("no message");
    classify(action, Some(i64::from(status.as_u16())), reason, message)
}

/// The result's columns, from the first answer that carries them.
fn keep_fields(output: &mut QueryOutput, schema: Option<TableSchema>) {
    if output.fields.is_empty() {
        output.fields = schema.and_then(|s| s.fields).unwrap_or_default();
    }
}

fn format_options() -> Option<DataFormatOptions> {
    Some(DataFormatOptions { use_int64_timestamp: Some(true) })
}

impl Api {
    /// Runs one statement (or script) with named parameters through jobs.query, waits for it,
    /// pages through its rows, and fails on errors carried by a 200 answer.
    pub async fn query(&self, action: &str, sql: String, params: Vec<QueryParameter>) -> Result<QueryOutput, Error> {
        let mut request = self.request(sql);
        if !params.is_empty() {
            request.parameter_mode = Some("NAMED".to_owned());
            request.query_parameters = Some(params);
        }
        self.run(action, request).await
    }

    /// Runs a query the operator wrote as a job of its own (jobs.insert) with `dataset` as its
    /// default dataset, so its tables are reachable unqualified, then reads every page of its
    /// rows with getQueryResults. A job rather than jobs.query: bqemulator applies a default
    /// dataset only to inserted jobs, while BigQuery honours it on both.
    pub async fn query_in(&self, action: &str, sql: String, dataset: &str) -> Result<QueryOutput, Error> {
        let job_id = format!("hsync_query_{}", uuid::Uuid::new_v4().simple());
        let job = Job {
            job_reference: Some(JobReference {
                job_id: Some(job_id.clone()),
                location: self.location.clone(),
                project_id: Some(self.project.clone()),
            }),
            configuration: Some(JobConfiguration {
                query: Some(JobConfigurationQuery {
                    query: sql,
                    use_legacy_sql: Some(false),
                    default_dataset: Some(DatasetReference {
                        dataset_id: dataset.to_owned(),
                        project_id: self.project.clone(),
                    }),
                    ..JobConfigurationQuery::default()
                }),
                ..JobConfiguration::default()
            }),
            ..Job::default()
        };
        let inserted = self.client.job().insert(&self.project, job).await.map_err(|e| from_bq(action, e))?;
        if let Some(e) = inserted.status.and_then(|s| s.error_result) {
            return Err(classify(
                action,
                None,
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or("no message"),
            ));
        }
        let location = inserted.job_reference.and_then(|r| r.location).or_else(|| self.location.clone());
        let mut output = QueryOutput::default();
        self.read_pages(action, Some(&job_id), location, (false, None), &mut output).await?;
        Ok(output)
    }

    fn request(&self, sql: String) -> QueryRequest {
        let mut request = QueryRequest::new(sql);
        request.format_options = format_options();
        request.location = self.location.clone();
        request.timeout_ms = Some(QUERY_WAIT_MS);
        request.request_id = Some(uuid::Uuid::new_v4().to_string());
        request
    }

    /// Sends a jobs.query request, waits for its job and reads every page of its rows.
    async fn run(&self, action: &str, request: QueryRequest) -> Result<QueryOutput, Error> {
        let response = self.client.job().query(&self.project, request).await.map_err(|e| from_bq(action, e))?;
        check_errors(action, response.errors.as_deref())?;
        let (job, location) = match response.job_reference {
            Some(r) => (r.job_id, r.location.or_else(|| self.location.clone())),
            None => (None, self.location.clone()),
        };
        let mut output = QueryOutput {
            rows: Vec::new(),
            affected: response.num_dml_affected_rows.as_deref().and_then(|n| n.parse().ok()),
            fields: Vec::new(),
        };
        let complete = response.job_complete.unwrap_or(true);
        let mut page_token = None;
        if complete {
            keep_fields(&mut output, response.schema);
            output.rows.extend(response.rows.unwrap_or_default().into_iter().map(row_values));
            page_token = response.page_token;
        }
        self.read_pages(action, job.as_deref(), location, (complete, page_token), &mut output).await?;
        Ok(output)
    }

    /// Waits for a query job and appends its rows to `output`, one getQueryResults call a
    /// page, from `from` (whether the job is known complete, and the next page's token).
    async fn read_pages(
        &self,
        action: &str,
        job: Option<&str>,
        location: Option<String>,
        from: (bool, Option<String>),
        output: &mut QueryOutput,
    ) -> Result<(), Error> {
        let (mut complete, mut page_token) = from;
        let started = std::time::Instant::now();
        while !complete || page_token.is_some() {
            let Some(job_id) = job else {
                return Err(Error::Statement {
                    kind: KIND,
                    action: action.to_owned(),
                    detail: "BigQuery did not finish the query and gave no job to wait for".to_owned(),
                });
            };
            if started.elapsed() > JOB_DEADLINE {
                return Err(Error::Unavailable {
                    kind: KIND,
                    detail: format!("{action}: the query job {job_id} did not finish within {JOB_DEADLINE:?}"),
                });
            }
            let page = self.results_page(action, job_id, location.as_deref(), page_token.take()).await?;
            check_errors(action, page.errors.as_deref())?;
            complete = page.job_complete.unwrap_or(true);
            if complete {
                keep_fields(output, page.schema);
                output.rows.extend(page.rows.unwrap_or_default().into_iter().map(row_values));
                if output.affected.is_none() {
                    output.affected = page.num_dml_affected_rows.as_deref().and_then(|n| n.parse().ok());
                }
                page_token = page.page_token;
            }
        }
        Ok(())
    }

    /// One getQueryResults call: waits up to [`QUERY_WAIT_MS`] for the job, then answers with a
    /// page of rows. Sent here rather than through the crate, whose parameters would put
    /// `formatOptions` into the URL as a nested struct, which no query string holds (the request
    /// fails to build); the API's parameter is `formatOptions.useInt64Timestamp`.
    async fn results_page(
        &self,
        action: &str,
        job_id: &str,
        location: Option<&str>,
        page_token: Option<String>,
    ) -> Result<GetQueryResultsResponse, Error> {
        let mut url = reqwest::Url::parse(&self.api_base)
            .map_err(|e| Error::Config(format!("destination.bigquery.endpoint is not a usable URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| Error::Config("destination.bigquery.endpoint is not a usable URL".to_owned()))?
            .extend(["projects", self.project.as_str(), "queries", job_id]);
        let mut query =
            vec![("formatOptions.useInt64Timestamp", "true".to_owned()), ("timeoutMs", QUERY_WAIT_MS.to_string())];
        if let Some(location) = location {
            query.push(("location", location.to_owned()));
        }
        if let Some(token) = page_token {
            query.push(("pageToken", token));
        }
        self.send_json(action, self.http.get(url).query(&query)).await
    }

    /// Sends `request` with the access token and reads a 2xx answer's JSON; any other status
    /// is [`http_failure`].
    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let token = self.credentials.access_token().await.map_err(|e| from_bq(action, e))?;
        let response =
            request.bearer_auth(token).send().await.map_err(|e| from_bq(action, BQError::RequestError(e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| from_bq(action, BQError::RequestError(e)))?;
        if !status.is_success() {
            return Err(http_failure(action, status, &text));
        }
        serde_json::from_str(&text).map_err(|e| from_bq(action, BQError::SerializationError(e)))
    }

    /// Appends a Parquet file to an existing table with a multipart load job, waits for the
    /// job and checks `status.errorResult`; returns the rows it loaded.
    pub async fn load_parquet(&self, action: &str, dataset: &str, table: &str, file: Vec<u8>) -> Result<u64, Error> {
        let job_id = format!("hsync_load_{}", uuid::Uuid::new_v4().simple());
        let mut reference = serde_json::json!({ "projectId": self.project, "jobId": job_id });
        if let Some(location) = &self.location {
            reference["location"] = serde_json::json!(location);
        }
        let metadata = serde_json::json!({
            "jobReference": reference,
            "configuration": { "load": {
                "destinationTable": { "projectId": self.project, "datasetId": dataset, "tableId": table },
                "sourceFormat": "PARQUET",
                "writeDisposition": "WRITE_APPEND",
                "createDisposition": "CREATE_NEVER",
            } },
        });
        let boundary = format!("hsync_{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(file.len() + 1024);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(metadata.to_string().as_bytes());
        body.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!("{}/projects/{}/jobs?uploadType=multipart", self.upload_base, self.project);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, format!("multipart/related; boundary={boundary}"))
            .body(body);
        let mut job: Job = self.send_json(action, request).await?;
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let status = job.status.clone().unwrap_or_default();
            if status.state.as_deref() == Some("DONE") {
                if let Some(e) = status.error_result {
                    return Err(classify(
                        action,
                        None,
                        e.reason.as_deref().unwrap_or_default(),
                        e.message.as_deref().unwrap_or("no message"),
                    ));
                }
                let rows = job.statistics.and_then(|s| s.load).and_then(|l| l.output_rows);
                return Ok(rows.and_then(|r| r.parse().ok()).unwrap_or_default());
            }
            if started.elapsed() > JOB_DEADLINE {
                return Err(Error::Unavailable {
                    kind: KIND,
                    detail: format!("{action}: the load job {job_id} did not finish within {JOB_DEADLINE:?}"),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            job = self
                .client
                .job()
                .get_job(&self.project, &job_id, self.location.as_deref())
                .await
                .map_err(|e| from_bq(action, e))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorClass};

    #[test]
    fn errors_are_classed_by_status_and_reason() {
        let class = |status, reason| classify("run a query", status, reason, "boom").class();
        assert_eq!(class(Some(429), ""), ErrorClass::RateLimited);
        assert_eq!(class(Some(403), "rateLimitExceeded"), ErrorClass::RateLimited);
        assert_eq!(class(None, "quotaExceeded"), ErrorClass::RateLimited);
        assert_eq!(class(Some(401), ""), ErrorClass::Auth);
        assert_eq!(class(Some(403), "accessDenied"), ErrorClass::Config);
        assert_eq!(class(Some(503), ""), ErrorClass::Transient);
        assert_eq!(class(None, "backendError"), ErrorClass::Transient);
        assert_eq!(class(Some(400), "invalidQuery"), ErrorClass::Bug);
        assert_eq!(class(None, "invalid"), ErrorClass::Data);
    }

    #[test]
    fn invalid_value_messages_are_not_repeated() {
        let e = classify("load", None, "invalid", "Could not parse 'secret@example.com' as NUMERIC");
        assert!(!e.to_string().contains("secret@example.com"), "{e}");
        let long = "x".repeat(2_000);
        assert!(classify("query", Some(400), "invalidQuery", &long).to_string().len() < 600);
    }

    #[test]
    fn credentials_debug_shows_no_token() {
        assert_eq!(format!("{:?}", Credentials::Emulator), "Credentials::Emulator");
    }
}
