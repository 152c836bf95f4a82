//! Planner rules, one by one, on small hand-made catalogs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use serde_json::json;
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::common::v1::{
    ChatMessage, ChatRequest, ContentPart, ImageUrl, content_part::Part,
};

use super::health::{Health, Signal};
use super::needs::Needs;
use super::perf::PerfSnapshot;
use super::prefs::{self, ProviderPrefs};
use super::select::{Context, Group, plan, weighted_pick};
use crate::catalog_view::RoutingTable;
use crate::error::ApiError;
use crate::stats::Agg;

struct Ep {
    tag: &'static str,
    name: &'static str,
    prompt: &'static str,
    quant: Option<&'static str>,
    params: &'static [&'static str],
    context: u32,
}

fn ep(tag: &'static str, name: &'static str, prompt: &'static str) -> Ep {
    Ep {
        tag,
        name,
        prompt,
        quant: None,
        params: &["max_tokens", "temperature"],
        context: 8000,
    }
}

fn table(models: &[(&str, Vec<Ep>)]) -> RoutingTable {
    let mut snapshot = pb::CatalogSnapshot {
        version: 1,
        ..Default::default()
    };
    let mut providers = HashMap::new();
    for (model, eps) in models {
        snapshot.models.push(pb::Model {
            id: (*model).into(),
            name: (*model).into(),
            context_length: 8000,
            architecture: Some(pb::Architecture {
                input_modalities: vec!["text".into()],
                tokenizer: if model.starts_with("openai/") {
                    "GPT".into()
                } else {
                    "Other".into()
                },
                ..Default::default()
            }),
            ..Default::default()
        });
        for e in eps {
            let slug = e.tag.split('/').next().unwrap();
            providers.entry(slug).or_insert_with(|| pb::Provider {
                slug: slug.into(),
                name: e.name.into(),
                wire_format: 1,
                base_url: "http://sim/v1".into(),
                may_train: Some(slug.contains("trains")),
                retains_prompts: Some(false),
                zero_data_retention: Some(slug.starts_with("zdr")),
                ..Default::default()
            });
            snapshot.endpoints.push(pb::Endpoint {
                id: format!("{}:{model}", e.tag),
                model_id: (*model).into(),
                provider_slug: slug.into(),
                tag: e.tag.into(),
                upstream_model: "m".into(),
                pricing: Some(pb::Pricing {
                    prompt: e.prompt.into(),
                    completion: e.prompt.into(),
                    input_cache_read: Some("0".into()),
                    ..Default::default()
                }),
                context_length: e.context,
                max_completion_tokens: Some(1000),
                quantization: e.quant.map(Into::into),
                supported_parameters: e.params.iter().map(|p| (*p).into()).collect(),
                status: 0,
            });
        }
    }
    snapshot.providers = providers.into_values().collect();
    RoutingTable::build(snapshot)
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            text: Some(text.into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Run<'a> {
    table: &'a RoutingTable,
    prefs: ProviderPrefs,
    request: ChatRequest,
    health: Health,
    perf: PerfSnapshot,
    sticky: Option<&'a str>,
}

impl<'a> Run<'a> {
    fn new(table: &'a RoutingTable) -> Run<'a> {
        Run {
            table,
            prefs: ProviderPrefs::defaults(),
            request: request("hello"),
            health: Health::default(),
            perf: PerfSnapshot::default(),
            sticky: None,
        }
    }
    fn prefs(mut self, v: serde_json::Value) -> Self {
        self.prefs = prefs::parse(Some(&v)).unwrap();
        self
    }
    fn plan(&self, models: &[&str]) -> Vec<Group> {
        let needs = Needs::of(&self.request);
        let cx = Context {
            table: self.table,
            prefs: &self.prefs,
            needs: &needs,
            health: &self.health,
            perf: &self.perf,
            sticky: self.sticky,
            request: Some(&self.request),
            now: Instant::now(),
        };
        plan(
            &models.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            &cx,
        )
    }
    /// Endpoint tags of the first group, in order.
    fn tags(&self, model: &str) -> Vec<String> {
        match &self.plan(&[model])[0].candidates {
            Ok(c) => c.iter().map(|c| c.endpoint.tag.clone()).collect(),
            Err(e) => panic!("no candidates: {e}"),
        }
    }
    fn error(&self, model: &str) -> ApiError {
        self.plan(&[model])
            .remove(0)
            .candidates
            .expect_err("expected no candidates")
    }
}

fn three() -> RoutingTable {
    table(&[(
        "m/x",
        vec![
            ep("cheap", "Cheap", "0.000001"),
            ep("mid", "Mid Co", "0.000002"),
            ep("dear", "Dear", "0.000003"),
        ],
    )])
}

#[test]
fn first_pick_follows_inverse_square_of_price() {
    // OpenRouter's worked example: $1/M vs $3/M -> 9x likelier.
    let t = table(&[(
        "m/x",
        vec![ep("a", "A", "0.000001"), ep("c", "C", "0.000003")],
    )]);
    let eps = &t.models["m/x"].endpoints;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = 20_000;
    let a = (0..n).filter(|_| weighted_pick(eps, &mut rng) == 0).count();
    let ratio = a as f64 / (n - a) as f64;
    assert!((7.5..10.5).contains(&ratio), "ratio {ratio}");
}

#[test]
fn fallbacks_follow_cheapest_first_and_recent_failures_go_last() {
    let t = three();
    let run = Run::new(&t);
    let now = Instant::now();
    run.health.record("cheap:m/x", Signal::Failure, now);
    for _ in 0..50 {
        let tags = run.tags("m/x");
        assert_eq!(tags.last().unwrap(), "cheap", "{tags:?}");
    }
}

#[test]
fn only_ignore_and_order_match_slugs_names_and_tags() {
    let t = table(&[(
        "m/x",
        vec![
            ep("deepinfra", "DeepInfra", "0.000001"),
            ep("deepinfra/turbo", "DeepInfra", "0.000002"),
            ep("groq", "Groq", "0.000003"),
        ],
    )]);
    assert_eq!(
        Run::new(&t)
            .prefs(json!({"only": ["deepinfra/turbo"]}))
            .tags("m/x"),
        ["deepinfra/turbo"]
    );
    let mut both = Run::new(&t)
        .prefs(json!({"only": ["DeepInfra"]}))
        .tags("m/x");
    both.sort();
    assert_eq!(both, ["deepinfra", "deepinfra/turbo"]);
    assert!(
        !Run::new(&t)
            .prefs(json!({"ignore": ["deepinfra"]}))
            .tags("m/x")
            .iter()
            .any(|t| t.starts_with("deepinfra"))
    );
    assert_eq!(
        Run::new(&t)
            .prefs(json!({"order": ["groq", "deepinfra/turbo"]}))
            .tags("m/x"),
        ["groq", "deepinfra/turbo", "deepinfra"]
    );
    assert_eq!(
        Run::new(&t)
            .prefs(json!({"order": ["groq"], "allow_fallbacks": false}))
            .tags("m/x"),
        ["groq"]
    );
    match Run::new(&t).prefs(json!({"only": ["nobody"]})).error("m/x") {
        ApiError::NoEndpoints(a) => assert_eq!(a.excluded_by, ["allowed_providers"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn quantizations_filter_with_families() {
    let mut a = ep("a", "A", "0.000001");
    a.quant = Some("mxfp8");
    let mut b = ep("b", "B", "0.000002");
    b.quant = Some("bf16");
    let c = ep("c", "C", "0.000003");
    let t = table(&[("m/x", vec![a, b, c])]);
    assert_eq!(
        Run::new(&t)
            .prefs(json!({"quantizations": ["fp8"]}))
            .tags("m/x"),
        ["a"]
    );
    assert_eq!(
        Run::new(&t)
            .prefs(json!({"quantizations": ["unknown"]}))
            .tags("m/x"),
        ["c"]
    );
    match Run::new(&t)
        .prefs(json!({"quantizations": ["int4"]}))
        .error("m/x")
    {
        ApiError::NoEndpoints(a) => assert_eq!(a.excluded_by, ["quantization"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn data_policy_filters() {
    let t = table(&[(
        "m/x",
        vec![
            ep("trains", "Trains", "0.000001"),
            ep("private", "Private", "0.000002"),
            ep("zdr", "Zdr", "0.000003"),
        ],
    )]);
    let mut deny = Run::new(&t)
        .prefs(json!({"data_collection": "deny"}))
        .tags("m/x");
    deny.sort();
    assert_eq!(deny, ["private", "zdr"]);
    assert_eq!(
        Run::new(&t).prefs(json!({"zdr": true})).tags("m/x"),
        ["zdr"]
    );
}

#[test]
fn max_price_is_a_hard_filter() {
    let t = three();
    let mut tags = Run::new(&t)
        .prefs(json!({"max_price": {"prompt": 2}}))
        .tags("m/x");
    tags.sort();
    assert_eq!(tags, ["cheap", "mid"]);
    let err = Run::new(&t)
        .prefs(json!({"max_price": {"prompt": 0.5}}))
        .error("m/x");
    assert_eq!(err.status(), 404);
    match err {
        ApiError::NoEndpoints(a) => {
            assert_eq!(a.code, "constraint_filtered");
            assert_eq!(a.excluded_by, ["max_price"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn context_and_max_tokens_must_fit() {
    let mut small = ep("small", "Small", "0.000001");
    small.context = 100;
    let big = ep("big", "Big", "0.000002");
    let t = table(&[("m/x", vec![small, big])]);
    let mut run = Run::new(&t);
    run.request = request(&"word ".repeat(200));
    assert_eq!(run.tags("m/x"), ["big"]);
    run.request = request(&"word ".repeat(20_000));
    let err = run.error("m/x");
    assert_eq!(err.status(), 400);
    assert_eq!(err.error_type(), "context_length_exceeded");
    run.request = request("hi");
    run.request.max_tokens = Some(5000);
    assert!(
        matches!(run.error("m/x"), ApiError::ContextTooLong { .. }),
        "max_tokens above max_completion_tokens"
    );
}

#[test]
fn require_parameters_and_soft_capabilities() {
    let mut tools = ep("tools", "Tools", "0.000002");
    tools.params = &["tools", "tool_choice", "temperature"];
    let plain = ep("plain", "Plain", "0.000001");
    let t = table(&[("m/x", vec![tools, plain])]);
    let mut run = Run::new(&t);
    run.request.top_k = Some(5);
    assert!(matches!(run.prefs.clone(), _));
    assert_eq!(
        run.tags("m/x").len(),
        2,
        "without require_parameters top_k is dropped silently"
    );
    run.prefs = prefs::parse(Some(&json!({"require_parameters": true}))).unwrap();
    assert!(matches!(run.error("m/x"), ApiError::NoEndpoints(_)));
    run.request.top_k = None;
    run.request.temperature = Some(0.5);
    assert_eq!(run.tags("m/x").len(), 2);
    // Tools: a soft preference even without require_parameters.
    let mut run = Run::new(&t);
    run.request.tools = vec![switchyard_proto::common::v1::Tool {
        r#type: "function".into(),
        name: "f".into(),
        ..Default::default()
    }];
    assert_eq!(run.tags("m/x"), ["tools"]);
}

#[test]
fn images_need_an_image_model() {
    let t = three();
    let mut run = Run::new(&t);
    run.request.messages[0].parts = vec![ContentPart {
        part: Some(Part::ImageUrl(ImageUrl {
            url: "https://example.com/a.png".into(),
            detail: None,
        })),
        cache_control_json: None,
    }];
    match run.error("m/x") {
        ApiError::NoEndpoints(a) => assert_eq!(a.excluded_by, ["modality"]),
        other => panic!("{other:?}"),
    }
}

fn perf(entries: &[(&str, f64, f64)]) -> PerfSnapshot {
    let mut snapshot = PerfSnapshot::default();
    for (id, ttft_ms, tps) in entries {
        let mut agg = Agg::default();
        let stats = crate::stats::Stats::local();
        for _ in 0..10 {
            stats.record(
                id,
                crate::stats::Outcome::Success,
                Some(Duration::from_secs_f64(ttft_ms / 1000.0)),
                Some(*tps),
            );
        }
        agg.merge(&stats.local_window(id, 5));
        snapshot.endpoints.insert((*id).to_owned(), agg);
    }
    snapshot
}

#[test]
fn sorts_by_price_throughput_and_latency_with_missing_data_last() {
    let t = three();
    let mut run = Run::new(&t);
    run.perf = perf(&[("mid:m/x", 100.0, 300.0), ("dear:m/x", 50.0, 100.0)]);
    run.prefs = prefs::parse(Some(&json!({"sort": "price"}))).unwrap();
    assert_eq!(run.tags("m/x"), ["cheap", "mid", "dear"]);
    run.prefs = prefs::parse(Some(&json!({"sort": "throughput"}))).unwrap();
    assert_eq!(run.tags("m/x"), ["mid", "dear", "cheap"]);
    run.prefs = prefs::parse(Some(&json!({"sort": {"by": "latency"}}))).unwrap();
    assert_eq!(run.tags("m/x"), ["dear", "mid", "cheap"]);
    // Variants: :nitro sorts by throughput, :floor by price.
    run.prefs = ProviderPrefs::defaults();
    assert_eq!(run.tags("m/x:nitro"), ["mid", "dear", "cheap"]);
    assert_eq!(run.tags("m/x:floor"), ["cheap", "mid", "dear"]);
}

#[test]
fn performance_preferences_demote_but_never_remove() {
    let t = three();
    let mut run = Run::new(&t);
    run.perf = perf(&[
        ("cheap:m/x", 2000.0, 20.0),
        ("mid:m/x", 100.0, 300.0),
        ("dear:m/x", 50.0, 100.0),
    ]);
    run.prefs = prefs::parse(Some(&json!({"sort": "price", "preferred_max_latency": 1}))).unwrap();
    assert_eq!(run.tags("m/x"), ["mid", "dear", "cheap"]);
    run.prefs = prefs::parse(Some(
        &json!({"sort": "price", "preferred_min_throughput": {"p50": 200}}),
    ))
    .unwrap();
    assert_eq!(run.tags("m/x"), ["mid", "cheap", "dear"]);
}

#[test]
fn free_variant_uses_zero_priced_endpoints_only() {
    let t = table(&[(
        "m/x",
        vec![ep("free", "Free", "0"), ep("paid", "Paid", "0.000001")],
    )]);
    let run = Run::new(&t);
    let groups = run.plan(&["m/x:free"]);
    let c = groups[0].candidates.as_ref().unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].endpoint.tag, "free");
    assert_eq!(c[0].served_model, "m/x:free");
    let t = three();
    assert!(matches!(
        Run::new(&t).error("m/x:free"),
        ApiError::NoEndpoints(_)
    ));
    assert!(matches!(
        Run::new(&t).error("m/x:turbo"),
        ApiError::UnknownModel(_)
    ));
}

#[test]
fn partition_none_sorts_every_model_together() {
    let t = table(&[
        (
            "m/a",
            vec![ep("a1", "A1", "0.000005"), ep("a2", "A2", "0.000004")],
        ),
        ("m/b", vec![ep("b1", "B1", "0.000001")]),
    ]);
    let run = Run::new(&t).prefs(json!({"sort": {"by": "price", "partition": "none"}}));
    let groups = run.plan(&["m/a", "m/b"]);
    assert_eq!(groups.len(), 1);
    let order: Vec<_> = groups[0]
        .candidates
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.endpoint.tag.clone())
        .collect();
    assert_eq!(order, ["b1", "a2", "a1"]);
    let run = Run::new(&t).prefs(json!({"sort": "price"}));
    let groups = run.plan(&["m/a", "m/b"]);
    assert_eq!(groups.len(), 2, "default partition keeps the models order");
}

#[test]
fn open_breakers_drop_out_until_most_are_open() {
    let t = three();
    let run = Run::new(&t);
    let now = Instant::now();
    for _ in 0..5 {
        run.health.record("cheap:m/x", Signal::Failure, now);
    }
    let tags = run.tags("m/x");
    assert!(!tags.contains(&"cheap".to_string()), "{tags:?}");
    for _ in 0..5 {
        run.health.record("mid:m/x", Signal::Failure, now);
    }
    // Two of three open: panic mode, health ignored.
    let groups = run.plan(&["m/x"]);
    let c = groups[0].candidates.as_ref().unwrap();
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|c| c.panic));
}

#[test]
fn rate_limited_endpoints_wait_out_retry_after() {
    let t = three();
    let run = Run::new(&t);
    let now = Instant::now();
    run.health.record(
        "cheap:m/x",
        Signal::RateLimited(Some(Duration::from_secs(30))),
        now,
    );
    assert!(!run.tags("m/x").contains(&"cheap".to_string()));
    for id in ["mid:m/x", "dear:m/x"] {
        run.health
            .record(id, Signal::RateLimited(Some(Duration::from_secs(7))), now);
    }
    match run.error("m/x") {
        ApiError::RateLimitedUpstream { retry_after_secs } => {
            assert!((6..=7).contains(&retry_after_secs))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sticky_endpoint_goes_first_unless_order_is_set() {
    let t = three();
    let mut run = Run::new(&t);
    run.sticky = Some("dear:m/x");
    for _ in 0..20 {
        assert_eq!(run.tags("m/x")[0], "dear");
    }
    run.prefs = prefs::parse(Some(&json!({"order": ["mid"]}))).unwrap();
    assert_eq!(run.tags("m/x")[0], "mid");
}

#[test]
fn at_most_three_endpoints_per_model() {
    let t = table(&[(
        "m/x",
        vec![
            ep("a", "A", "0.000001"),
            ep("b", "B", "0.000002"),
            ep("c", "C", "0.000003"),
            ep("d", "D", "0.000004"),
        ],
    )]);
    assert_eq!(Run::new(&t).tags("m/x").len(), 3);
    assert!(Arc::strong_count(&t.models["m/x"]) >= 1);
}

#[test]
fn near_a_limit_gpt_prompts_are_counted_with_the_real_tokenizer() {
    // "a a a ..." is one token per word but only two bytes: the estimate
    // (bytes / 4) says half. 8,500 words fit by estimate, not in truth.
    let mut gpt = ep("cheap", "Cheap", "0.000001");
    gpt.context = 8000;
    let mut other = ep("cheap", "Cheap", "0.000001");
    other.context = 8000;
    let t = table(&[("openai/gpt-4", vec![gpt]), ("meta/llama", vec![other])]);
    let mut run = Run::new(&t);
    run.request = request(&"a ".repeat(8_500));
    assert!(
        matches!(run.error("openai/gpt-4"), ApiError::ContextTooLong { requested } if requested > 8_000)
    );
    assert_eq!(
        run.tags("meta/llama"),
        ["cheap"],
        "no tokenizer: the estimate decides"
    );
    run.request = request(&"a ".repeat(7_000));
    assert_eq!(run.tags("openai/gpt-4"), ["cheap"]);
}
