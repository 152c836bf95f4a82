//! Shared helpers: fresh stores of both kinds and sample catalog rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard_catalog::store::{CatalogStore, EmbeddedStore, PostgresStore};
use switchyard_catalog::{Architecture, Endpoint, Model, Pricing, Provider, WireFormat};
use switchyard_kit::testing::{fresh_postgres_database, unique_name};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique_name("switchyard_catalog"));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store plus whatever must outlive it.
pub struct TestStore {
    pub store: Arc<dyn CatalogStore>,
    _dir: Option<TempDir>,
}

pub async fn postgres_store() -> TestStore {
    let url = fresh_postgres_database().await;
    let store = PostgresStore::connect(&url.into()).await.expect("connect");
    TestStore {
        store: Arc::new(store),
        _dir: None,
    }
}

pub async fn embedded_store() -> TestStore {
    let dir = TempDir::new();
    let store = EmbeddedStore::open(&dir.path().join("catalog.redb"))
        .await
        .expect("open embedded store");
    TestStore {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

pub fn seed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/catalog.toml")
}

pub fn price(s: &str) -> switchyard_kit::Price {
    s.parse().unwrap()
}

pub fn provider(slug: &str) -> Provider {
    Provider {
        slug: slug.to_owned(),
        name: format!("Provider {slug}"),
        wire_format: WireFormat::OpenAi,
        base_url: format!("https://{slug}.example/v1"),
        credential_ref: format!("{}_API_KEY", slug.to_uppercase().replace('-', "_")),
        privacy_policy_url: Some(format!("https://{slug}.example/privacy")),
        terms_of_service_url: None,
        status_page_url: None,
        headquarters: Some("US".to_owned()),
        may_train: Some(false),
        retains_prompts: Some(true),
        zero_data_retention: None,
    }
}

pub fn model(id: &str) -> Model {
    Model {
        id: id.to_owned(),
        canonical_slug: format!("{id}-2024-01-01"),
        name: format!("Model {id}"),
        created: 1_700_000_000,
        description: "A test model".to_owned(),
        context_length: 8192,
        architecture: Architecture {
            modality: "text+image->text".to_owned(),
            input_modalities: vec!["text".to_owned(), "image".to_owned()],
            output_modalities: vec!["text".to_owned()],
            tokenizer: "GPT".to_owned(),
            instruct_type: Some("chatml".to_owned()),
        },
        knowledge_cutoff: Some("2023-04-30".to_owned()),
        supported_parameters: vec!["max_tokens".to_owned(), "temperature".to_owned()],
        hugging_face_id: None,
    }
}

pub fn endpoint(tag: &str, model_id: &str) -> Endpoint {
    Endpoint {
        id: Endpoint::id_for(tag, model_id),
        model_id: model_id.to_owned(),
        provider_slug: tag.split('/').next().unwrap().to_owned(),
        tag: tag.to_owned(),
        upstream_model: "upstream-name".to_owned(),
        pricing: Pricing {
            prompt: price("0.00003"),
            completion: price("0.00006"),
            request: None,
            image: Some(price("0.001445")),
            input_cache_read: Some(price("0.000000000000000001")),
            input_cache_write: None,
            internal_reasoning: Some(price("123.456")),
        },
        context_length: 8191,
        max_completion_tokens: Some(4096),
        quantization: Some("fp8".to_owned()),
        supported_parameters: vec!["max_tokens".to_owned()],
        status: -1,
    }
}
