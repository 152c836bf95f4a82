//! API keys: create, authenticate, import idempotently, validation — on both
//! backends — and the embedded pepper that must survive a restart.

use switchyard_kit::ErrorKind;
use switchyard_kit::error::ServiceError;
use switchyard_usage_metering::keys::NewKey;
use switchyard_usage_metering::{Config, KeyKind, Metering};

use crate::support::temp_data_dir;

crate::on_both_backends!(
    created_keys_authenticate,
    unknown_keys_are_absent,
    importing_the_same_key_twice_returns_the_existing_key,
    keys_can_join_an_existing_account,
    bad_key_requests_are_rejected,
);

const DEV_KEY: &str = "sk-dev-0123456789abcdef";

async fn created_keys_authenticate(metering: Metering) {
    let created = metering
        .ensure_key(
            "laptop",
            KeyKind::Inference,
            None,
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    let text = &created.key_text;
    assert!(
        text.starts_with("sk-sy-v1-") && text.len() == 9 + 72,
        "{text}"
    );
    assert_eq!(
        created.key.label,
        format!("{}...{}", &text[..12], &text[text.len() - 3..])
    );
    assert_ne!(created.key.hash, *text);
    assert_eq!(created.key.hash.len(), 64);
    assert!(!created.key.disabled);

    let found = metering
        .authenticate(text)
        .await
        .unwrap()
        .expect("key found");
    assert_eq!(found, created.key);
    assert_eq!(found.name, "laptop");
    assert_eq!(found.kind, KeyKind::Inference);

    let other = metering
        .ensure_key(
            "ops",
            KeyKind::Management,
            None,
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    assert_ne!(
        other.key.account_id, created.key.account_id,
        "a new account per key"
    );
    assert_eq!(
        metering
            .authenticate(&other.key_text)
            .await
            .unwrap()
            .unwrap()
            .kind,
        KeyKind::Management
    );
}

async fn unknown_keys_are_absent(metering: Metering) {
    let created = metering
        .ensure_key(
            "k",
            KeyKind::Inference,
            None,
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    let mut wrong = created.key_text.clone();
    wrong.pop();
    wrong.push('x');
    for text in [wrong.as_str(), "", "sk-sy-v1-nope", &"x".repeat(5000)] {
        assert!(metering.authenticate(text).await.unwrap().is_none());
    }
}

async fn importing_the_same_key_twice_returns_the_existing_key(metering: Metering) {
    let first = metering
        .ensure_key(
            "dev",
            KeyKind::Inference,
            Some(DEV_KEY),
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    assert_eq!(first.key_text, DEV_KEY);
    let second = metering
        .ensure_key(
            "dev again",
            KeyKind::Management,
            Some(DEV_KEY),
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    assert_eq!(second.key, first.key, "the existing key, unchanged");
    assert_eq!(
        metering.authenticate(DEV_KEY).await.unwrap(),
        Some(first.key)
    );
}

async fn keys_can_join_an_existing_account(metering: Metering) {
    let first = metering
        .ensure_key(
            "one",
            KeyKind::Inference,
            None,
            switchyard_usage_metering::ledger::Billing::Prepaid,
        )
        .await
        .unwrap();
    let account = &first.key.account_id;
    let new = NewKey::parse("two", KeyKind::Inference, account, None).unwrap();
    let second = metering.create_key(new).await.unwrap();
    assert_eq!(&second.key.account_id, account);

    let orphan = NewKey::parse("three", KeyKind::Inference, "acct-missing", None).unwrap();
    let err = metering.create_key(orphan).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

async fn bad_key_requests_are_rejected(metering: Metering) {
    let long_name = "n".repeat(201);
    for (name, import) in [
        ("", None),
        ("  ", None),
        (long_name.as_str(), None),
        ("ok", Some("too-short")),
    ] {
        let err = metering
            .ensure_key(
                name,
                KeyKind::Inference,
                import,
                switchyard_usage_metering::ledger::Billing::Prepaid,
            )
            .await
            .unwrap_err();
        let err = err
            .downcast_ref::<switchyard_usage_metering::MeteringError>()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
}

#[tokio::test]
async fn embedded_pepper_is_generated_once_and_kept_private() {
    let dir = temp_data_dir();
    let config = Config::embedded(&dir);
    let created = {
        let metering = Metering::open(&config).await.unwrap();
        metering
            .ensure_key(
                "k",
                KeyKind::Inference,
                None,
                switchyard_usage_metering::ledger::Billing::Prepaid,
            )
            .await
            .unwrap()
    };
    let pepper = std::fs::read_to_string(dir.join("key-pepper")).unwrap();
    assert_eq!(pepper.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("key-pepper"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Reopened, the same pepper still recognises the key.
    let metering = Metering::open(&config).await.unwrap();
    assert_eq!(
        metering.authenticate(&created.key_text).await.unwrap(),
        Some(created.key)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("key-pepper")).unwrap(),
        pepper
    );
}

#[tokio::test]
async fn postgres_reopens_with_its_keys_and_keeps_migrations_in_its_schema() {
    let config = crate::support::postgres_config().await;
    let created = {
        let metering = Metering::open(&config).await.unwrap();
        metering
            .ensure_key(
                "k",
                KeyKind::Inference,
                Some(DEV_KEY),
                switchyard_usage_metering::ledger::Billing::Prepaid,
            )
            .await
            .unwrap()
    };
    // Migrating again is a no-op, and the key is still there.
    let metering = Metering::open(&config).await.unwrap();
    assert_eq!(
        metering.authenticate(DEV_KEY).await.unwrap(),
        Some(created.key)
    );

    let url = config.database_url.as_deref().unwrap();
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        schemas,
        ["metering"],
        "another service's migrations must not collide"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT hash FROM metering.api_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!stored.iter().any(|h| h.contains(DEV_KEY)));
}
