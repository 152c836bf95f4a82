//! Realistic, deterministic sample data for every page (shared by the preview example and the page tests).
#![allow(dead_code)]

use switchyard_web::{
    AppUsage, DailyTokens, EffectivePrice, Endpoint, ModelDailyTokens, ModelInfo, ModelPage,
    ModelsIndex, ModelsQuery, Period, ProviderInfo, ProviderPage, ProviderRef, ProviderSeries,
    RankedModel, Rankings, Site, TimeSeries, UptimeSeries,
};

/// 2025-06-15 12:00 UTC: every sample ends here, so output is stable.
pub const NOW: i64 = 1_749_988_800;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

pub fn site() -> Site {
    Site::new("Switchyard", "http://localhost:8080/api/v1")
}

/// A small deterministic wobble in [-1, 1] so series look alive without a random-number crate.
fn wobble(seed: u64, i: i64) -> f64 {
    let x = (seed as f64 * 12.9898 + i as f64 * 78.233).sin() * 43_758.545;
    (x - x.floor()) * 2.0 - 1.0
}

fn provider(slug: &str, name: &str) -> ProviderRef {
    ProviderRef::new(slug, name)
}

const PROVIDERS: [(&str, &str); 4] = [
    ("deepinfra", "DeepInfra"),
    ("together", "Together"),
    ("fireworks", "Fireworks"),
    ("lambda", "Lambda"),
];

pub fn models() -> Vec<ModelInfo> {
    let m = |id: &str,
             name: &str,
             days_ago: i64,
             ctx: u64,
             price: Option<(f64, f64)>,
             modal: &[&str],
             provs: &[usize],
             tps: Option<f64>,
             lat: Option<f64>,
             weekly: u64,
             desc: &str| ModelInfo {
        id: id.into(),
        name: name.into(),
        description: desc.into(),
        created: NOW - days_ago * DAY,
        context_length: ctx,
        input_price: price.map(|p| p.0),
        output_price: price.map(|p| p.1),
        knowledge_cutoff: None,
        input_modalities: modal.iter().map(|s| (*s).to_owned()).collect(),
        output_modalities: vec!["text".into()],
        providers: provs
            .iter()
            .map(|&i| provider(PROVIDERS[i].0, PROVIDERS[i].1))
            .collect(),
        throughput: tps,
        latency_ms: lat,
        weekly_tokens: weekly,
    };
    let openai = |id: &str,
                  name: &str,
                  days: i64,
                  ctx: u64,
                  price: (f64, f64),
                  modal: &[&str],
                  tps: f64,
                  lat: f64,
                  weekly: u64,
                  desc: &str| {
        let mut model = m(
            id,
            name,
            days,
            ctx,
            Some(price),
            modal,
            &[],
            Some(tps),
            Some(lat),
            weekly,
            desc,
        );
        model.providers = vec![provider("openai", "OpenAI"), provider("azure", "Azure")];
        model
    };
    vec![
        m(
            "meta-llama/llama-3.1-70b-instruct",
            "Meta: Llama 3.1 70B Instruct",
            330,
            131_072,
            Some((0.23, 0.40)),
            &["text"],
            &[0, 1, 2, 3],
            Some(68.4),
            Some(412.0),
            48_200_000_000,
            "Meta's 70B instruction-tuned model from the Llama 3.1 family: strong at dialogue, coding and multilingual tasks, with a 128K context window.",
        ),
        openai(
            "openai/gpt-4o",
            "OpenAI: GPT-4o",
            400,
            128_000,
            (2.5, 10.0),
            &["text", "image", "file"],
            92.1,
            520.0,
            96_000_000_000,
            "GPT-4o (\"o\" for \"omni\") takes text and image inputs and answers with text, at GPT-4 Turbo quality with higher speed and lower cost.",
        ),
        openai(
            "openai/gpt-4o-mini",
            "OpenAI: GPT-4o mini",
            330,
            128_000,
            (0.15, 0.6),
            &["text", "image", "file"],
            110.0,
            380.0,
            210_000_000_000,
            "A small, fast and cheap multimodal model for high-volume tasks.",
        ),
        openai(
            "openai/gpt-4",
            "OpenAI: GPT-4",
            800,
            8_191,
            (30.0, 60.0),
            &["text"],
            31.0,
            780.0,
            1_200_000_000,
            "The original GPT-4 with an 8K context window.",
        ),
        m(
            "mistralai/mistral-7b-instruct:free",
            "Mistral: Mistral 7B Instruct (free)",
            600,
            32_768,
            Some((0.0, 0.0)),
            &["text"],
            &[1],
            Some(140.0),
            Some(260.0),
            12_300_000_000,
            "A 7.3B-parameter instruction-tuned model, free to use with rate limits.",
        ),
        m(
            "google/gemini-2.0-flash",
            "Google: Gemini 2.0 Flash",
            150,
            1_048_576,
            Some((0.1, 0.4)),
            &["text", "image", "audio", "video", "file"],
            &[],
            Some(165.0),
            Some(340.0),
            150_000_000_000,
            "Fast multimodal model with a one-million-token context window.",
        ),
        m(
            "qwen/qwen-2.5-coder-32b-instruct",
            "Qwen: Qwen2.5 Coder 32B Instruct",
            200,
            32_768,
            Some((0.07, 0.16)),
            &["text"],
            &[0, 2],
            Some(55.0),
            None,
            3_400_000_000,
            "Code-specialised 32B model: generation, reasoning about code and fixing it.",
        ),
        m(
            "acme/preview-model",
            "Acme: Preview <beta>",
            2,
            16_000,
            None,
            &["text"],
            &[3],
            None,
            None,
            0,
            "Brand-new model without prices or traffic yet. <script>alert('xss')</script>",
        ),
    ]
}

pub fn index(query: &str) -> ModelsIndex {
    ModelsIndex {
        site: site(),
        models: models(),
        query: ModelsQuery::parse(query),
    }
}

fn series(seed: u64, base: f64, spread: f64, hours: i64, gap_every: Option<i64>) -> TimeSeries {
    (0..hours)
        .map(|k| {
            let t = NOW - (hours - 1 - k) * HOUR;
            let missing = gap_every.is_some_and(|g| k % g == g - 1);
            (
                t,
                (!missing).then(|| {
                    (base + spread * wobble(seed, k) + spread * 0.5 * ((k as f64) / 5.0).sin())
                        .max(1.0)
                }),
            )
        })
        .collect()
}

pub fn model_page() -> ModelPage {
    let model = models().remove(0);
    let mut model = model;
    model.knowledge_cutoff = Some("December 2023".into());
    let stats = [
        (0.23, 0.40, "fp8", 380.0, 72.0, 99.6),
        (0.88, 0.88, "fp16", 450.0, 95.0, 99.1),
        (0.9, 0.9, "fp16", 310.0, 120.0, 97.2),
        (0.2, 0.3, "bf16", 690.0, 41.0, 88.5),
    ];
    let endpoints = PROVIDERS
        .iter()
        .zip(stats)
        .map(
            |(&(slug, name), (input, output, quant, lat, tps, up))| Endpoint {
                provider: provider(slug, name),
                model_id: model.id.clone(),
                model_name: model.name.clone(),
                tag: format!("{slug}/{quant}"),
                context_length: if slug == "lambda" { 65_536 } else { 131_072 },
                max_output_tokens: Some(if slug == "fireworks" { 16_384 } else { 8_192 }),
                input_price: Some(input),
                output_price: Some(output),
                cache_read_price: (slug == "deepinfra").then_some(0.06),
                cache_write_price: None,
                quantization: Some(quant.into()),
                latency_ms: Some(lat),
                throughput: Some(tps),
                uptime: Some(up),
            },
        )
        .collect::<Vec<_>>();
    let latency = PROVIDERS
        .iter()
        .enumerate()
        .map(|(i, (_, name))| ProviderSeries {
            provider: (*name).into(),
            points: series(
                i as u64 + 1,
                stats[i].3,
                70.0,
                48,
                if i == 3 { Some(9) } else { None },
            ),
        })
        .collect();
    let throughput = PROVIDERS
        .iter()
        .enumerate()
        .map(|(i, (_, name))| ProviderSeries {
            provider: (*name).into(),
            points: series(
                i as u64 + 11,
                stats[i].4,
                12.0,
                48,
                if i == 3 { Some(9) } else { None },
            ),
        })
        .collect();
    let effective_pricing = vec![
        EffectivePrice {
            provider: "DeepInfra".into(),
            effective_input: Some(0.17),
            effective_output: Some(0.40),
            list_input: Some(0.23),
            list_output: Some(0.40),
            tokens: 182_000_000,
        },
        EffectivePrice {
            provider: "Together".into(),
            effective_input: Some(0.88),
            effective_output: Some(0.88),
            list_input: Some(0.88),
            list_output: Some(0.88),
            tokens: 41_000_000,
        },
        EffectivePrice {
            provider: "Fireworks".into(),
            effective_input: Some(0.61),
            effective_output: Some(0.90),
            list_input: Some(0.90),
            list_output: Some(0.90),
            tokens: 23_500_000,
        },
        EffectivePrice {
            provider: "Lambda".into(),
            effective_input: None,
            effective_output: None,
            list_input: Some(0.20),
            list_output: Some(0.30),
            tokens: 0,
        },
    ];
    let top_apps = vec![
        AppUsage {
            name: "Cline".into(),
            url: Some("https://cline.bot".into()),
            tokens: 8_400_000_000,
            requests: 1_920_000,
        },
        AppUsage {
            name: "SillyTavern".into(),
            url: Some("https://sillytavern.app".into()),
            tokens: 5_100_000_000,
            requests: 2_310_000,
        },
        AppUsage {
            name: "Roo Code".into(),
            url: Some("https://roocode.com".into()),
            tokens: 2_700_000_000,
            requests: 640_000,
        },
        AppUsage {
            name: "Acme internal <tools>".into(),
            url: Some("javascript:alert(1)".into()),
            tokens: 950_000_000,
            requests: 118_000,
        },
        AppUsage {
            name: "Weekend hack".into(),
            url: None,
            tokens: 12_400_000,
            requests: 3_100,
        },
    ];
    let daily_tokens = (0..30)
        .map(|d| {
            let day = NOW - (29 - d) * DAY;
            let c = switchyard_civil(day);
            let scale = 1.0 + 0.25 * wobble(7, d) + d as f64 / 40.0;
            DailyTokens {
                date: c,
                prompt: (5.2e9 * scale) as u64,
                completion: (1.1e9 * scale) as u64,
                reasoning: if d > 20 { (2.0e8 * scale) as u64 } else { 0 },
            }
        })
        .collect();
    let uptime = PROVIDERS
        .iter()
        .enumerate()
        .map(|(i, (_, name))| UptimeSeries {
            label: (*name).into(),
            hourly: (0..72)
                .filter(|k| !(i == 3 && (20..30).contains(k)))
                .map(|k| {
                    let t = NOW - (71 - k) * HOUR;
                    let dip = match (i, k) {
                        (2, 40..=42) => 12.0,
                        (3, 50..=53) => 25.0,
                        (1, 60) => 7.0,
                        _ => 0.0,
                    };
                    (
                        t,
                        Some((99.8 - dip + 0.3 * wobble(i as u64 + 21, k)).min(100.0)),
                    )
                })
                .collect(),
        })
        .collect();
    let availability_with_fallbacks = (0..24)
        .map(|k| {
            (
                NOW - (23 - k) * HOUR,
                Some((99.95 + 0.05 * wobble(31, k)).min(100.0)),
            )
        })
        .collect();
    let availability_without_routing = (0..24)
        .map(|k| {
            (
                NOW - (23 - k) * HOUR,
                Some(97.8 + 1.6 * wobble(32, k) - if k == 15 { 6.0 } else { 0.0 }),
            )
        })
        .collect();
    ModelPage {
        site: site(),
        now: NOW,
        model,
        endpoints,
        latency,
        throughput,
        effective_pricing,
        top_apps,
        daily_tokens,
        uptime,
        availability_with_fallbacks,
        availability_without_routing,
    }
}

/// A model page with nothing but the catalog entry: what a brand-new model looks like.
pub fn empty_model_page() -> ModelPage {
    let model = models().pop().expect("sample models");
    ModelPage {
        site: site(),
        now: NOW,
        model,
        ..ModelPage::default()
    }
}

/// `YYYY-MM-DD` for a unix time (the sample data's own tiny calendar; days since 1970 → civil date).
fn switchyard_civil(unix: i64) -> String {
    let mut days = unix.div_euclid(DAY);
    let mut year = 1970;
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    while days >= if leap(year) { 366 } else { 365 } {
        days -= if leap(year) { 366 } else { 365 };
        year += 1;
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lengths[month] {
        days -= lengths[month];
        month += 1;
    }
    format!("{year:04}-{:02}-{:02}", month + 1, days + 1)
}

pub fn rankings(period: Period) -> Rankings {
    let catalog = models();
    let scale = match period {
        Period::Day => 1.0 / 7.0,
        Period::Week => 1.0,
        Period::Month => 4.3,
    };
    let top_models: Vec<RankedModel> = catalog
        .iter()
        .filter(|m| m.weekly_tokens > 0)
        .map(|m| RankedModel {
            id: m.id.clone(),
            name: m.name.clone(),
            tokens: (m.weekly_tokens as f64 * scale) as u64,
            requests: (m.weekly_tokens as f64 * scale / 2_900.0) as u64,
        })
        .collect();
    let mut leaders = top_models.clone();
    leaders.sort_by_key(|m| std::cmp::Reverse(m.tokens));
    let daily = leaders
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, m)| ModelDailyTokens {
            model_id: m.id.clone(),
            name: m.name.clone(),
            days: (0..14)
                .map(|d| {
                    (
                        switchyard_civil(NOW - (13 - d) * DAY),
                        (m.tokens as f64 / 7.0 * (1.0 + 0.2 * wobble(i as u64 + 40, d))) as u64,
                    )
                })
                .collect(),
        })
        .collect();
    let mut top_apps = model_page().top_apps;
    for app in &mut top_apps {
        app.tokens = (app.tokens as f64 * 3.0 * scale) as u64;
        app.requests = (app.requests as f64 * 3.0 * scale) as u64;
    }
    Rankings {
        site: site(),
        period,
        top_models,
        top_apps,
        daily,
    }
}

pub fn provider_page() -> ProviderPage {
    let info = ProviderInfo {
        slug: "deepinfra".into(),
        name: "DeepInfra".into(),
        headquarters: Some("Palo Alto, US".into()),
        datacenters: vec!["US".into()],
        privacy_policy_url: Some("https://deepinfra.com/privacy".into()),
        terms_of_service_url: Some("https://deepinfra.com/terms".into()),
        status_page_url: None,
        trains_on_data: Some(false),
        retains_prompts: Some(false),
        retention_days: None,
        zero_data_retention: Some(true),
    };
    let page = model_page();
    let mut endpoints: Vec<Endpoint> = page
        .endpoints
        .into_iter()
        .filter(|e| e.provider.slug == "deepinfra")
        .collect();
    let mut qwen = endpoints[0].clone();
    qwen.model_id = "qwen/qwen-2.5-coder-32b-instruct".into();
    qwen.model_name = "Qwen: Qwen2.5 Coder 32B Instruct".into();
    qwen.tag = "deepinfra/bf16".into();
    qwen.context_length = 32_768;
    qwen.input_price = Some(0.07);
    qwen.output_price = Some(0.16);
    qwen.quantization = Some("bf16".into());
    qwen.latency_ms = None;
    qwen.throughput = Some(55.0);
    qwen.uptime = Some(93.4);
    endpoints.push(qwen);
    let uptime = vec![
        UptimeSeries {
            label: "Meta: Llama 3.1 70B Instruct".into(),
            hourly: page.uptime[0].hourly.clone(),
        },
        UptimeSeries {
            label: "Qwen: Qwen2.5 Coder 32B Instruct".into(),
            hourly: (0..72)
                .map(|k| {
                    (
                        NOW - (71 - k) * HOUR,
                        (k > 12).then(|| 96.0 - if (30..34).contains(&k) { 14.0 } else { 0.0 }),
                    )
                })
                .collect(),
        },
    ];
    ProviderPage {
        site: site(),
        now: NOW,
        provider: info,
        endpoints,
        uptime,
    }
}
