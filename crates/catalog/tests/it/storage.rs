//! One storage suite, run against Postgres and the embedded store.

use std::sync::Arc;

use switchyard_catalog::store::{Batch, CatalogStore};
use switchyard_catalog::{Catalog, CatalogError, seed};

use crate::support::{TempDir, endpoint, model, price, provider, seed_path};

type Store = Arc<dyn CatalogStore>;

/// Runs each listed test once per store kind.
macro_rules! storage_suite {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn postgres() {
                    let s = crate::support::postgres_store().await;
                    super::$name(s.store.clone()).await;
                }

                #[tokio::test]
                async fn embedded() {
                    let s = crate::support::embedded_store().await;
                    super::$name(s.store.clone()).await;
                }
            }
        )*
    };
}

storage_suite!(
    starts_empty_at_version_zero,
    rows_round_trip_exactly,
    unchanged_rows_keep_the_version,
    changes_bump_the_version_once_per_batch,
    endpoints_need_a_known_model_and_provider,
    deleting_an_endpoint,
    snapshots_are_sorted,
    seed_applied_twice_changes_nothing,
    editing_a_seed_price_updates_it,
);

fn full_batch() -> Batch {
    Batch {
        providers: vec![provider("deepinfra"), provider("openai")],
        models: vec![model("openai/gpt-4")],
        endpoints: vec![
            endpoint("openai", "openai/gpt-4"),
            endpoint("deepinfra/turbo", "openai/gpt-4"),
        ],
        delete_endpoints: vec![],
    }
}

async fn starts_empty_at_version_zero(store: Store) {
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.version, 0);
    assert!(snapshot.models.is_empty() && snapshot.providers.is_empty());
    assert!(snapshot.endpoints.is_empty());
    assert_eq!(store.version().await.unwrap(), 0);
}

async fn rows_round_trip_exactly(store: Store) {
    let batch = full_batch();
    let outcome = store.apply(batch.clone()).await.unwrap();
    assert_eq!(outcome.version, 1);
    assert_eq!(outcome.changed, 5);
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.models, batch.models);
    assert_eq!(snapshot.providers, batch.providers);
    let mut endpoints = batch.endpoints.clone();
    endpoints.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(snapshot.endpoints, endpoints);
    let e = snapshot
        .endpoints
        .iter()
        .find(|e| e.tag == "openai")
        .unwrap();
    assert_eq!(e.pricing.prompt.to_string(), "0.00003");
    assert_eq!(
        e.pricing.input_cache_read,
        Some(price("0.000000000000000001"))
    );
    assert_eq!(e.pricing.internal_reasoning, Some(price("123.456")));
    assert_eq!(e.pricing.request, None);
}

async fn unchanged_rows_keep_the_version(store: Store) {
    store.apply(full_batch()).await.unwrap();
    let again = store.apply(full_batch()).await.unwrap();
    assert_eq!(again.version, 1);
    assert_eq!(again.changed, 0);
    assert_eq!(store.version().await.unwrap(), 1);
}

async fn changes_bump_the_version_once_per_batch(store: Store) {
    store.apply(full_batch()).await.unwrap();
    let mut e = endpoint("openai", "openai/gpt-4");
    e.pricing.prompt = price("0.000025");
    let mut m = model("openai/gpt-4");
    m.knowledge_cutoff = None;
    m.architecture.input_modalities.pop();
    let outcome = store
        .apply(Batch {
            models: vec![m.clone()],
            endpoints: vec![e.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((outcome.version, outcome.changed), (2, 2));
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.model("openai/gpt-4"), Some(&m));
    let stored = snapshot.endpoints.iter().find(|x| x.id == e.id).unwrap();
    assert_eq!(stored.pricing.prompt.to_string(), "0.000025");
}

async fn endpoints_need_a_known_model_and_provider(store: Store) {
    let unknown_model = Batch {
        providers: vec![provider("openai")],
        endpoints: vec![endpoint("openai", "openai/gpt-5")],
        ..Batch::default()
    };
    let err = store.apply(unknown_model).await.unwrap_err();
    assert!(
        matches!(err, CatalogError::UnknownModel(ref m) if m == "openai/gpt-5"),
        "{err:?}"
    );
    // The failed batch is atomic: its provider was not written either.
    let snapshot = store.snapshot().await.unwrap();
    assert!(snapshot.providers.is_empty());
    assert_eq!(snapshot.version, 0);

    let unknown_provider = Batch {
        models: vec![model("openai/gpt-4")],
        endpoints: vec![endpoint("together", "openai/gpt-4")],
        ..Batch::default()
    };
    let err = store.apply(unknown_provider).await.unwrap_err();
    assert!(
        matches!(err, CatalogError::UnknownProvider(ref p) if p == "together"),
        "{err:?}"
    );
    assert!(store.snapshot().await.unwrap().models.is_empty());
}

async fn deleting_an_endpoint(store: Store) {
    store.apply(full_batch()).await.unwrap();
    let id = "deepinfra/turbo:openai/gpt-4".to_owned();
    let delete = Batch {
        delete_endpoints: vec![id.clone()],
        ..Batch::default()
    };
    let outcome = store.apply(delete.clone()).await.unwrap();
    assert_eq!((outcome.version, outcome.changed), (2, 1));
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.endpoints.len(), 1);
    assert!(snapshot.endpoints.iter().all(|e| e.id != id));
    let again = store.apply(delete).await.unwrap();
    assert_eq!((again.version, again.changed), (2, 0));
}

async fn snapshots_are_sorted(store: Store) {
    let batch = Batch {
        providers: vec![provider("together"), provider("deepinfra")],
        models: vec![
            model("z-ai/glm-4"),
            model("anthropic/claude-3-haiku"),
            model("meta-llama/llama-3.1-8b-instruct"),
        ],
        endpoints: vec![
            endpoint("together", "meta-llama/llama-3.1-8b-instruct"),
            endpoint("deepinfra", "anthropic/claude-3-haiku"),
        ],
        delete_endpoints: vec![],
    };
    store.apply(batch).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    let ids: Vec<_> = snapshot.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "anthropic/claude-3-haiku",
            "meta-llama/llama-3.1-8b-instruct",
            "z-ai/glm-4"
        ]
    );
    let slugs: Vec<_> = snapshot.providers.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["deepinfra", "together"]);
    let endpoint_ids: Vec<_> = snapshot.endpoints.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        endpoint_ids,
        [
            "deepinfra:anthropic/claude-3-haiku",
            "together:meta-llama/llama-3.1-8b-instruct"
        ]
    );
}

async fn seed_applied_twice_changes_nothing(store: Store) {
    let seed = seed::load(&seed_path()).unwrap();
    let catalog = Catalog::with_store(store.clone()).await.unwrap();
    let first = catalog.apply_seed(&seed).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(
        first.changed,
        seed.providers.len() + seed.models.len() + seed.endpoints.len()
    );
    let snapshot = catalog.snapshot();
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.models.len(), seed.models.len());
    assert_eq!(snapshot.endpoints.len(), seed.endpoints.len());

    let second = catalog.apply_seed(&seed).await.unwrap();
    assert_eq!((second.version, second.changed), (1, 0));
    // What a fresh reader sees equals the published snapshot.
    assert_eq!(*catalog.snapshot(), store.snapshot().await.unwrap());
}

async fn editing_a_seed_price_updates_it(store: Store) {
    let catalog = Catalog::with_store(store.clone()).await.unwrap();
    let original = std::fs::read_to_string(seed_path()).unwrap();
    catalog
        .apply_seed(&seed::parse(&original).unwrap())
        .await
        .unwrap();

    let line =
        "upstream_model = \"gpt-4\"\npricing = { prompt = \"0.00003\", completion = \"0.00006\" }";
    assert!(
        original.contains(line),
        "seed layout changed; update this test"
    );
    let edited = original.replace(
        line,
        "upstream_model = \"gpt-4\"\npricing = { prompt = \"0.000025\", completion = \"0.00006\" }",
    );
    let dir = TempDir::new();
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, edited).unwrap();
    let outcome = catalog
        .apply_seed(&seed::load(&path).unwrap())
        .await
        .unwrap();
    assert_eq!((outcome.version, outcome.changed), (2, 1));

    let snapshot = catalog.snapshot();
    assert_eq!(snapshot.version, 2);
    let gpt4 = |tag: &str| {
        snapshot
            .endpoints
            .iter()
            .find(|e| e.id == format!("{tag}:openai/gpt-4"))
            .unwrap()
            .pricing
            .prompt
            .to_string()
    };
    assert_eq!(gpt4("openai"), "0.000025");
    assert_eq!(gpt4("openrouter"), "0.00003");
}
