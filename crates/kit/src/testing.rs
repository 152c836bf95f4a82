//! Test helpers shared by every crate's integration tests: each test gets its
//! own Postgres database and its own Redis key prefix, so runs never collide.
//!
//! Connection settings come from `SWITCHYARD_TEST_POSTGRES_URL` (an admin URL,
//! default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `SWITCHYARD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).

use rand::Rng;
use sqlx::Connection;

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
    let name = unique_name("switchyard_test");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("tests need Postgres at {admin}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}
