//! A HubSpot answer that cannot be read at all stops only the stream it belongs to (issue 16,
//! point 1): a proxy in front of the simulator answers every contacts search with a complete
//! 200 body whose `results` is not a list; `hsync backfill` still copies the other objects, then
//! exits 65 naming the contacts stream and the record range it could not read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method as HttpMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use reqwest::Method;

use crate::support::cli::{explain, hsync, write_config};
use crate::support::{unlimited, Sim};

/// Forwards every request to `upstream`, except contacts searches, answered with a body that
/// is JSON but not a search page.
async fn corrupting_proxy(upstream: String) -> String {
    let client = Arc::new((reqwest::Client::new(), upstream));
    let app = axum::Router::new().fallback(forward).with_state(client);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn forward(State(state): State<Arc<(reqwest::Client, String)>>, request: Request) -> Response {
    let (client, upstream) = &*state;
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if request.method() == HttpMethod::POST && path.contains("/contacts/search") {
        let body = r#"{"total":3,"results":"these are not records","paging":{"next":{"after":"9"}}}"#;
        return (StatusCode::OK, [("content-type", "application/json")], body).into_response();
    }
    let method = Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
    let headers = request.headers().clone();
    let body: Bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
    let mut out = client.request(method, format!("{upstream}{path}")).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = out.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" && name != "content-encoding" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    response.body(axum::body::Body::from(answer.bytes().await.unwrap())).unwrap()
}

#[tokio::test]
async fn an_unreadable_answer_stops_only_its_object_and_names_the_range() {
    let sim = Sim::start(unlimited(crate::support::small_portal())).await;
    let proxy = corrupting_proxy(sim.handle.base_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = write_config(
        dir.path(),
        &proxy,
        &format!(
            "[destination]\nurl = \"sqlite://{}\"\n[sync]\nobjects = [\"contacts\", \"companies\"]\n",
            db.display()
        ),
    );
    let out = hsync(&config, &["backfill"]).await;
    assert_eq!(out.status.code(), Some(65), "a data-class exit: {}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("backfill:contacts") && stderr.contains("ids above 0"), "{}", explain(&out));
    assert!(stderr.contains("other objects"), "says the rest went on: {}", explain(&out));

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let companies: i64 = sqlx::query_scalar("select count(*) from companies").fetch_one(&pool).await.unwrap();
    let truth = sim.admin_ok(Method::GET, "/_sim/truth", None).await;
    let expected = truth["objects"]["companies"]["live"].as_array().unwrap().len();
    assert_eq!(companies, i64::try_from(expected).unwrap(), "companies were copied in full");
}
