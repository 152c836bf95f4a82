//! The shipped seed file: it parses, is self-consistent, and carries the
//! models and prices the rest of Switchyard relies on.

use switchyard_catalog::{CatalogSnapshot, seed};

use crate::support::{price, seed_path};

fn shipped() -> CatalogSnapshot {
    let seed = seed::load(&seed_path()).expect("deploy/catalog.toml must load");
    CatalogSnapshot {
        version: 0,
        models: seed.models,
        providers: seed.providers,
        endpoints: seed.endpoints,
    }
}

#[test]
fn shipped_seed_is_consistent() {
    let catalog = shipped();
    catalog
        .validate()
        .expect("every endpoint references a seeded model and provider");
    assert!(
        catalog.models.len() >= 10,
        "{} models",
        catalog.models.len()
    );
    for model in &catalog.models {
        assert!(
            catalog.endpoints_of(&model.id).next().is_some(),
            "{} has no endpoint",
            model.id
        );
    }
    for provider in &catalog.providers {
        assert!(
            provider.base_url.starts_with("https://"),
            "{}",
            provider.slug
        );
        assert!(!provider.credential_ref.is_empty(), "{}", provider.slug);
    }
    let openai = catalog.provider("openai").unwrap();
    assert_eq!(openai.base_url, "https://api.openai.com/v1");
    assert_eq!(openai.credential_ref, "OPENAI_API_KEY");
}

#[test]
fn shipped_seed_has_gpt_4_at_exact_prices() {
    let catalog = shipped();
    let gpt4 = catalog.model("openai/gpt-4").expect("openai/gpt-4");
    assert_eq!(gpt4.name, "OpenAI: GPT-4");
    assert_eq!(gpt4.created, 1685232000);
    assert_eq!(gpt4.context_length, 8191);
    let endpoints: Vec<_> = catalog.endpoints_of("openai/gpt-4").collect();
    assert!(endpoints.len() >= 2, "{} endpoints", endpoints.len());
    for e in endpoints {
        assert_eq!(e.pricing.prompt, price("0.00003"), "{}", e.id);
        assert_eq!(e.pricing.completion, price("0.00006"), "{}", e.id);
        assert_eq!(e.pricing.prompt.per_million_usd(), 30.0);
    }
}

#[test]
fn shipped_seed_has_gpt_4_turbo_1106_at_exact_prices() {
    let catalog = shipped();
    let model = catalog
        .model("openai/gpt-4-1106-preview")
        .expect("openai/gpt-4-1106-preview");
    assert_eq!(model.name, "OpenAI: GPT-4 Turbo (older v1106)");
    assert_eq!(model.created, 1699228800);
    assert_eq!(model.knowledge_cutoff.as_deref(), Some("2023-04-30"));
    assert_eq!(model.context_length, 128000);
    let endpoints: Vec<_> = catalog.endpoints_of(&model.id).collect();
    assert!(endpoints.len() >= 2, "{} endpoints", endpoints.len());
    for e in endpoints {
        assert_eq!(e.pricing.prompt, price("0.00001"), "{}", e.id);
        assert_eq!(e.pricing.completion, price("0.00003"), "{}", e.id);
    }
}

#[test]
fn commented_local_server_example_is_valid() {
    // The commented-out self-hosted block must work when a user uncomments it.
    let text = std::fs::read_to_string(seed_path()).unwrap();
    let start = text
        .find("# [[providers]]\n# slug = \"local-vllm\"")
        .expect("local-vllm example");
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
        .collect();
    let uncommented = format!("{text}\n{block}");
    let seed = seed::parse(&uncommented).unwrap();
    let local = seed
        .providers
        .iter()
        .find(|p| p.slug == "local-vllm")
        .unwrap();
    assert_eq!(local.base_url, "http://127.0.0.1:8000/v1");
    assert!(
        seed.endpoints
            .iter()
            .any(|e| e.id == "local-vllm:meta-llama/llama-3.1-8b-instruct")
    );
}
