//! Parameters an endpoint does not support are dropped before the call
//! (OpenRouter's rule), unless `require_parameters` already kept such
//! endpoints out. An endpoint that lists no parameters gets everything.

use switchyard_proto::common::v1::ChatRequest;

use crate::catalog_view::EndpointRoute;

/// The request as this endpoint should see it.
pub fn for_endpoint(request: &ChatRequest, endpoint: &EndpointRoute) -> ChatRequest {
    let mut r = request.clone();
    if endpoint.supported_parameters.is_empty() {
        return r;
    }
    let supports = |p: &str| endpoint.supported_parameters.iter().any(|s| s == p);
    macro_rules! keep_if {
        ($field:ident, $name:expr) => {
            if !supports($name) {
                r.$field = None;
            }
        };
    }
    keep_if!(temperature, "temperature");
    keep_if!(top_p, "top_p");
    keep_if!(top_k, "top_k");
    keep_if!(frequency_penalty, "frequency_penalty");
    keep_if!(presence_penalty, "presence_penalty");
    keep_if!(repetition_penalty, "repetition_penalty");
    keep_if!(min_p, "min_p");
    keep_if!(top_a, "top_a");
    keep_if!(seed, "seed");
    keep_if!(logit_bias_json, "logit_bias");
    keep_if!(logprobs, "logprobs");
    keep_if!(top_logprobs, "top_logprobs");
    keep_if!(parallel_tool_calls, "parallel_tool_calls");
    if !supports("reasoning") && !supports("include_reasoning") {
        r.reasoning_json = None;
    }
    if !supports("stop") {
        r.stop.clear();
    }
    if !supports("response_format") && !supports("structured_outputs") {
        r.response_format_json = None;
    }
    if !supports("tools") {
        r.tools.clear();
        r.tool_choice_json = None;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_parameters_are_dropped() {
        let request = ChatRequest {
            temperature: Some(0.5),
            top_k: Some(40),
            seed: Some(7),
            stop: vec!["END".into()],
            ..Default::default()
        };
        let endpoint = |params: &[&str]| EndpointRoute {
            supported_parameters: params.iter().map(|p| (*p).to_owned()).collect(),
            ..crate::catalog_view::EndpointRoute::test_default()
        };
        let r = for_endpoint(&request, &endpoint(&["temperature", "stop"]));
        assert_eq!(r.temperature, Some(0.5));
        assert_eq!(r.top_k, None);
        assert_eq!(r.seed, None);
        assert_eq!(r.stop, ["END"]);
        let all = for_endpoint(&request, &endpoint(&[]));
        assert_eq!(all.top_k, Some(40), "no list: everything goes");
    }
}
