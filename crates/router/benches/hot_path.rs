//! Micro-benchmarks of the router's per-request work: parsing a chat body,
//! the routing decision, rendering one SSE chunk in each output format, pricing a generation, and
//! how routing and `/models` rendering scale with the catalog's size.
//!
//! `cargo bench -p switchyard-router --bench hot_path` (add `-- routing` to
//! run only the benchmarks whose name contains "routing").

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use serde_json::json;
use switchyard_kit::Price;
use switchyard_kit::money::Rates;
use switchyard_proto::catalog::v1 as pb;
use switchyard_proto::provider::v1::Delta;
use switchyard_router::catalog_view::RoutingTable;
use switchyard_router::engine::{Committed, Event};
use switchyard_router::http::chat_stream::ChatChunks;
use switchyard_router::http::completions::TextChunks;
use switchyard_router::http::messages::MessageEvents;
use switchyard_router::http::models::render_models;
use switchyard_router::http::request::parse_chat;
use switchyard_router::http::sse::StreamFormat;
use switchyard_router::routing::health::Health;
use switchyard_router::routing::needs::Needs;
use switchyard_router::routing::perf::PerfSnapshot;
use switchyard_router::routing::prefs::{self, ProviderPrefs};
use switchyard_router::routing::select::{Context, plan};

/// Endpoints per model in every generated catalog.
const ENDPOINTS_PER_MODEL: usize = 5;
/// Catalog sizes (models) for the scale check.
const SCALES: [usize; 3] = [50, 500, 5_000];

/// A chat body as SDKs send it: a system prompt, a short exchange, a new
/// user turn, sampling parameters and streaming.
fn typical_body(model: &str) -> Vec<u8> {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in plain English and cite no sources unless asked."},
            {"role": "user", "content": "What is the difference between a mutex and a read-write lock?"},
            {"role": "assistant", "content": "A mutex lets one holder in at a time; a read-write lock lets many readers or one writer in."},
            {"role": "user", "content": "When would the read-write lock be slower? Give one concrete example from a web server."}
        ],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 512,
        "stream": true,
        "user": "bench-user-42"
    })
    .to_string()
    .into_bytes()
}

/// `models` models with `ENDPOINTS_PER_MODEL` endpoints each, spread over
/// 20 providers with distinct prices, shaped like the seed catalog's entries.
fn snapshot(models: usize) -> pb::CatalogSnapshot {
    const PROVIDERS: usize = 20;
    let params: Vec<String> = [
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    let providers = (0..PROVIDERS)
        .map(|p| pb::Provider {
            slug: format!("provider{p}"),
            name: format!("Provider {p}"),
            wire_format: 1,
            base_url: format!("https://api.provider{p}.example/v1"),
            credential_ref: format!("PROVIDER{p}_API_KEY"),
            may_train: Some(false),
            retains_prompts: Some(p % 2 == 0),
            zero_data_retention: Some(p % 5 == 0),
            ..Default::default()
        })
        .collect();
    let mut snapshot = pb::CatalogSnapshot {
        version: 1,
        providers,
        ..Default::default()
    };
    for m in 0..models {
        let id = format!("author{}/model-{m}", m % 37);
        snapshot.models.push(pb::Model {
            id: id.clone(),
            canonical_slug: id.clone(),
            name: format!("Author {}: Model {m}", m % 37),
            created: 1_700_000_000 + m as i64 * 3_600,
            description: "A general-purpose instruction-tuned model with tool use and \
                          structured outputs, served by several providers at different prices."
                .into(),
            context_length: 128_000,
            architecture: Some(pb::Architecture {
                modality: "text->text".into(),
                input_modalities: vec!["text".into()],
                output_modalities: vec!["text".into()],
                tokenizer: "Other".into(),
                ..Default::default()
            }),
            knowledge_cutoff: Some("2024-06-30".into()),
            supported_parameters: params.clone(),
            hugging_face_id: Some(format!("author/model-{m}")),
        });
        for e in 0..ENDPOINTS_PER_MODEL {
            let p = (m + e * 3) % PROVIDERS;
            let slug = format!("provider{p}");
            snapshot.endpoints.push(pb::Endpoint {
                id: format!("{slug}:{id}"),
                model_id: id.clone(),
                provider_slug: slug.clone(),
                tag: slug,
                upstream_model: format!("model-{m}"),
                pricing: Some(pb::Pricing {
                    prompt: format!("0.00000{}", e + 1),
                    completion: format!("0.0000{}", e + 2),
                    input_cache_read: Some("0.0000001".into()),
                    ..Default::default()
                }),
                context_length: 128_000,
                max_completion_tokens: Some(16_384),
                quantization: Some("fp8".into()),
                supported_parameters: params.clone(),
                status: 0,
            });
        }
    }
    snapshot
}

/// One routing decision for the parsed request, the way the engine makes it:
/// needs from the request, then the plan over the current table.
fn route(
    table: &RoutingTable,
    models: &[String],
    prefs: &ProviderPrefs,
    request: &switchyard_proto::common::v1::ChatRequest,
    health: &Health,
    perf: &PerfSnapshot,
) -> usize {
    let needs = Needs::of(request);
    let cx = Context {
        table,
        prefs,
        needs: &needs,
        health,
        perf,
        sticky: None,
        request: Some(request),
        now: Instant::now(),
    };
    let groups = plan(models, &cx);
    groups[0].candidates.as_ref().map_or(0, Vec::len)
}

fn parsing(c: &mut Criterion) {
    let body = typical_body("author3/model-3");
    let mut group = c.benchmark_group("parse_chat");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("typical_body", |b| {
        b.iter(|| parse_chat(black_box(&body)).expect("valid body"))
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let table = RoutingTable::build(snapshot(500));
    let parsed = parse_chat(&typical_body("author3/model-3")).expect("valid body");
    let health = Health::default();
    let perf = PerfSnapshot::default();
    assert_eq!(
        route(
            &table,
            &parsed.models,
            &parsed.prefs,
            &parsed.request,
            &health,
            &perf
        ),
        3,
        "the bench catalog must route"
    );
    let mut group = c.benchmark_group("routing_500x5");
    group.bench_function("default_load_balancing", |b| {
        b.iter(|| {
            route(
                black_box(&table),
                &parsed.models,
                &parsed.prefs,
                &parsed.request,
                &health,
                &perf,
            )
        })
    });
    let by_price = prefs::parse(Some(&json!({ "sort": "price", "ignore": ["provider7"] })))
        .expect("valid prefs");
    group.bench_function("sort_price_ignore", |b| {
        b.iter(|| {
            route(
                black_box(&table),
                &parsed.models,
                &by_price,
                &parsed.request,
                &health,
                &perf,
            )
        })
    });
    let fallbacks: Vec<String> = ["author9/model-9", "author3/model-3", "author1/model-1"]
        .map(String::from)
        .to_vec();
    group.bench_function("three_model_fallback_list", |b| {
        b.iter(|| {
            route(
                black_box(&table),
                &fallbacks,
                &parsed.prefs,
                &parsed.request,
                &health,
                &perf,
            )
        })
    });
    group.finish();
}

/// One streamed content delta through each output format's renderer (the
/// code the router runs per chunk): OpenAI chat chunks, legacy completion
/// chunks and Anthropic Messages events.
fn sse_chunk(c: &mut Criterion) {
    let (_tx, events) = tokio::sync::mpsc::channel(1);
    let committed = Committed {
        generation_id: "gen-1732233600-aBcDeFgHiJkLmNoPqRsT".into(),
        created: 1_732_233_600,
        model: "author3/model-3".into(),
        provider_name: "Provider 3".into(),
        endpoint_id: "author3/model-3@provider-3".into(),
        attempts: Vec::new(),
        reasoning_format: "unknown",
        events,
    };
    let mut group = c.benchmark_group("sse_chunk");
    render_delta::<ChatChunks>(&mut group, "chat", &committed);
    render_delta::<TextChunks>(&mut group, "completions", &committed);
    render_delta::<MessageEvents>(&mut group, "messages", &committed);
    group.finish();
}

fn render_delta<F: StreamFormat>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    committed: &Committed,
) {
    let delta = || {
        Event::Delta(Delta {
            content: Some(" token".into()),
            ..Default::default()
        })
    };
    let (mut format, _) = F::start(committed);
    // The first delta may open a block (Anthropic's content_block_start);
    // the benchmark times the steady state after it.
    format.render(delta());
    group.bench_function(name, |b| {
        b.iter_batched(
            delta,
            |event| format.render(event).expect("a delta shows on the wire"),
            BatchSize::SmallInput,
        )
    });
}

fn pricing(c: &mut Criterion) {
    let rates = Rates {
        prompt: "0.000003".parse::<Price>().expect("price"),
        completion: "0.000015".parse::<Price>().expect("price"),
        request: Price::ZERO,
    };
    c.bench_function("pricing/charge", |b| {
        b.iter(|| black_box(&rates).charge(black_box(1_234), black_box(567), "stop"))
    });
}

fn scale(c: &mut Criterion) {
    let parsed = parse_chat(&typical_body("author3/model-3")).expect("valid body");
    let health = Health::default();
    let perf = PerfSnapshot::default();
    let tables: Vec<(usize, RoutingTable)> = SCALES
        .iter()
        .map(|&n| (n, RoutingTable::build(snapshot(n))))
        .collect();

    let mut group = c.benchmark_group("scale_routing");
    for (n, table) in &tables {
        group.bench_with_input(BenchmarkId::from_parameter(n), table, |b, table| {
            b.iter(|| {
                route(
                    table,
                    &parsed.models,
                    &parsed.prefs,
                    &parsed.request,
                    &health,
                    &perf,
                )
            })
        });
    }
    group.finish();

    // Rendered once per catalog snapshot (and per filtered `?q=` request);
    // an unfiltered `GET /models` serves the pre-rendered bytes.
    let mut group = c.benchmark_group("scale_render_models");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for (n, table) in &tables {
        let models: &HashMap<_, _> = &table.models;
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), models, |b, models| {
            b.iter(|| render_models(models).len())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("scale_table_build");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for &n in &SCALES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || snapshot(n),
                |s| RoutingTable::build(s).models.len(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, parsing, routing, sse_chunk, pricing, scale);
criterion_main!(benches);
