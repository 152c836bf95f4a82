//! Test helpers shared by every crate's integration tests: each test gets its
//! own Postgres database and its own Redis key prefix, so runs never collide.
//!
//! Connection settings come from `SWITCHYARD_TEST_POSTGRES_URL` (an admin URL,
//! default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `SWITCHYARD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
//!
//! Test databases are not dropped when a test ends (a failing test's is
//! worth looking at), so the first fresh database of each test process
//! sweeps the test databases older than an hour first: without it
//! every full run left about 200 behind, and autovacuum working through
//! them skewed benchmarks on the same server.

use std::sync::atomic::{AtomicBool, Ordering};

use rand::Rng;
use sqlx::Connection;

/// The prefix of every database [`fresh_postgres_database`] creates.
const TEST_DATABASE_PREFIX: &str = "switchyard_test";
/// No test runs this long, so an older test database is left over.
const STALE_AFTER_SECS: u64 = 60 * 60;
static SWEPT: AtomicBool = AtomicBool::new(false);

pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A short random lowercase name, e.g. for a database or key prefix.
pub fn unique_name(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("{prefix}_{suffix}")
}

/// Creates a new, empty database and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin = postgres_admin_url();
    let name = unique_name(TEST_DATABASE_PREFIX);
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("tests need Postgres at {admin}: {e}"));
    if !SWEPT.swap(true, Ordering::Relaxed) {
        drop_stale_test_databases(&mut conn).await;
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// Drops the test databases whose directory is older than
/// [`STALE_AFTER_SECS`]. Best effort: reading a database's directory age
/// (`pg_stat_file`) needs a superuser or `pg_read_server_files`; without
/// it, or when another process drops the same database first, nothing
/// happens.
async fn drop_stale_test_databases(conn: &mut sqlx::PgConnection) {
    let stale: Vec<String> = match sqlx::query_scalar(
        "SELECT datname FROM pg_database
         WHERE datname LIKE $1 || '\\_%'
           AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification
               < now() - make_interval(secs => $2)",
    )
    .bind(TEST_DATABASE_PREFIX)
    .bind(STALE_AFTER_SECS as f64)
    .fetch_all(&mut *conn)
    .await
    {
        Ok(names) => names,
        Err(_) => return,
    };
    for name in stale {
        // The name came from pg_database and matched our prefix; quote it anyway.
        let statement = format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        );
        let _ = sqlx::query(&statement).execute(&mut *conn).await;
    }
}

/// `GET /metrics` from a metrics server; panics unless it answers 200 with
/// the Prometheus text format.
pub async fn scrape_metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to metrics at {addr}: {e}"));
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .expect("send scrape");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read scrape");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "scrape failed: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    body.to_owned()
}

/// Every label value in a scrape, to check none carries an id, a key or
/// text from a request.
pub fn metric_label_values(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| Some(line.split_once('{')?.1.rsplit_once('}')?.0.to_owned()))
        .flat_map(|labels| {
            labels
                .split("\",")
                .filter_map(|pair| Some(pair.split_once("=\"")?.1.trim_end_matches('"').to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}
