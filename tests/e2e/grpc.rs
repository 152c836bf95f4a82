//! The router's public gRPC API, called with the generated client.

use futures_util::StreamExt;
use switchyard_proto::common::v1::{ChatMessage, ChatRequest};
use switchyard_proto::router::v1::ChatCompletionRequest;
use switchyard_proto::router::v1::router_service_client::RouterServiceClient;
use switchyard_tests::Stack;

fn request(key: &str) -> tonic::Request<ChatCompletionRequest> {
    let mut request = tonic::Request::new(ChatCompletionRequest {
        model: "openai/gpt-4".into(),
        request: Some(ChatRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                text: Some("hello over gRPC".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

#[tokio::test]
async fn unary_and_streaming_over_grpc() {
    let stack = Stack::start().await;
    let mut client = RouterServiceClient::connect(format!("http://{}", stack.router_grpc))
        .await
        .unwrap();
    let response = client
        .chat_completion(request(&stack.key))
        .await
        .unwrap()
        .into_inner();
    assert!(response.id.starts_with("gen-"));
    assert_eq!(response.provider, "SimCheap");
    let text = response.choices[0]
        .message
        .as_ref()
        .unwrap()
        .text
        .clone()
        .unwrap();
    assert!(!text.is_empty());
    let usage = response.usage.unwrap();
    assert!(usage.cost_nanos > 0);

    let mut stream = client
        .stream_chat_completion(request(&stack.key))
        .await
        .unwrap()
        .into_inner();
    let mut streamed = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(delta) = &chunk.delta {
            streamed.push_str(delta.content.as_deref().unwrap_or(""));
        }
        last = Some(chunk);
    }
    assert_eq!(
        streamed, text,
        "deterministic upstream, same text both ways"
    );
    assert!(last.unwrap().usage.is_some(), "usage on the final chunk");

    // Routing preferences travel as OpenRouter's `provider` object.
    let mut pinned = request(&stack.key);
    pinned.get_mut().provider_json = Some(r#"{"only": ["sim-pricey"]}"#.into());
    let response = client.chat_completion(pinned).await.unwrap().into_inner();
    assert_eq!(response.provider, "SimPricey");
    let mut nonsense = request(&stack.key);
    nonsense.get_mut().provider_json = Some(r#"{"sort": "fastest"}"#.into());
    let status = client.chat_completion(nonsense).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    let mut bad = request("sk-sy-v1-nope");
    bad.metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    let status = client.chat_completion(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    stack.stop().await;
}
