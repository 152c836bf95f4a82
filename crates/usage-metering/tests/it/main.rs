//! Integration tests for usage-metering: the storage suite runs against both
//! Postgres (a fresh database per test) and the embedded store.

mod grpc;
mod keys;
mod ledger;
mod metrics;
mod support;
mod usage;

/// `--migrate-only` (the Kubernetes migration Job): migrate and exit 0.
#[tokio::test]
async fn migrate_only_migrates_and_exits() {
    let url = switchyard_kit::testing::fresh_postgres_database().await;
    for _ in 0..2 {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard-usage-metering"))
            .arg("--migrate-only")
            .env("SWITCHYARD_DATABASE_URL", &url)
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'metering' AND table_name = 'generations'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 1);
}
