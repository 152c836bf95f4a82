//! Integration tests for the catalog: the storage suite (run against
//! Postgres and the embedded store), the seed file, and gRPC end to end.

mod grpc;
mod metrics;
mod seed;
mod storage;
mod support;

/// `--migrate-only` (the Kubernetes migration Job): migrate, seed, exit 0,
/// and leave a catalog the service then serves.
#[tokio::test]
async fn migrate_only_migrates_seeds_and_exits() {
    let url = switchyard_kit::testing::fresh_postgres_database().await;
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/catalog.toml");
    for _ in 0..2 {
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard-catalog"))
            .args(["--migrate-only", "--seed", seed])
            .env("SWITCHYARD_DATABASE_URL", &url)
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "idempotent: the Job may run again");
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let models: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog.models")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(models >= 2);
}
