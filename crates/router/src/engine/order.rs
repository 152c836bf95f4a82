//! Default provider load balancing: endpoints with a significant outage in
//! the last 30 s go last; among the rest the first pick is random, weighted
//! by 1/price²; the remaining endpoints follow as fallbacks, cheapest first.

use std::sync::Arc;

use rand::Rng;

use crate::catalog_view::EndpointRoute;
use crate::stats::Stats;

/// At most this many endpoints of one model are tried per request.
pub const MAX_ENDPOINTS_PER_MODEL: usize = 3;

/// `endpoints` arrive cheapest first (the routing table keeps them so).
pub fn order(endpoints: &[Arc<EndpointRoute>], stats: &Stats) -> Vec<Arc<EndpointRoute>> {
    let (mut healthy, degraded): (Vec<_>, Vec<_>) = endpoints
        .iter()
        .cloned()
        .partition(|e| !stats.is_degraded(&e.id));
    if healthy.len() > 1 {
        let first = weighted_pick(&healthy, &mut rand::rng());
        let chosen = healthy.remove(first);
        healthy.insert(0, chosen);
    }
    healthy.extend(degraded);
    healthy.truncate(MAX_ENDPOINTS_PER_MODEL);
    healthy
}

fn weight(e: &EndpointRoute) -> f64 {
    // Free endpoints get the weight of a tiny price rather than infinity.
    let price = (e.blended_price() as f64).max(1.0);
    1.0 / (price * price)
}

fn weighted_pick(endpoints: &[Arc<EndpointRoute>], rng: &mut impl Rng) -> usize {
    let weights: Vec<f64> = endpoints.iter().map(|e| weight(e)).collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    endpoints.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Outcome;
    use rand::SeedableRng;
    use switchyard_kit::Price;
    use switchyard_kit::money::Rates;

    fn ep(id: &str, prompt: &str) -> Arc<EndpointRoute> {
        Arc::new(EndpointRoute {
            id: id.into(),
            model_id: "m/x".into(),
            tag: id.into(),
            provider_slug: id.into(),
            provider_name: id.into(),
            target: Default::default(),
            pricing: Default::default(),
            rates: Rates {
                prompt: prompt.parse::<Price>().unwrap(),
                ..Default::default()
            },
            context_length: 1000,
            max_completion_tokens: None,
            status: 0,
        })
    }

    #[test]
    fn first_pick_follows_inverse_square_of_price() {
        // OpenRouter's worked example: $1/M vs $3/M -> 9x likelier.
        let eps = vec![ep("a", "0.000001"), ep("c", "0.000003")];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 20_000;
        let a = (0..n)
            .filter(|_| weighted_pick(&eps, &mut rng) == 0)
            .count();
        let ratio = a as f64 / (n - a) as f64;
        assert!((7.5..10.5).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn degraded_endpoints_go_last_and_the_list_is_capped() {
        let stats = Stats::local();
        for _ in 0..3 {
            stats.record("a", Outcome::Failure, None, None);
        }
        let eps = vec![
            ep("a", "0.000001"),
            ep("b", "0.000002"),
            ep("c", "0.000003"),
            ep("d", "0.000004"),
        ];
        for _ in 0..50 {
            let ordered = order(&eps, &stats);
            assert_eq!(ordered.len(), MAX_ENDPOINTS_PER_MODEL);
            assert!(
                ordered.iter().all(|e| e.id != "a"),
                "degraded endpoint dropped behind 3 healthy ones"
            );
        }
        let two = order(&eps[..2], &stats);
        assert_eq!(two.last().unwrap().id, "a");
    }
}
