//! The public gRPC API (`switchyard.router.v1.RouterService`): the same engine
//! as the HTTP API, for clients that prefer gRPC. Authenticate with metadata
//! `authorization: Bearer <key>`.

use std::pin::Pin;
use std::time::Instant;

use switchyard_kit::error::to_status;
use switchyard_kit::grpc::MAX_MESSAGE_BYTES;
use switchyard_proto::common::v1::{ChatMessage, TokenUsage, ToolCall};
use switchyard_proto::router::v1 as pb;
use switchyard_proto::router::v1::router_service_server::{RouterService, RouterServiceServer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::KeyCache;
use crate::engine::{Attribution, Committed, Engine, Event, Job, Summary};
use crate::error::ApiError;
use crate::ids;

#[derive(Clone)]
pub struct RouterGrpc {
    engine: Engine,
    keys: KeyCache,
    limiter: crate::ratelimit::RateLimiter,
}

impl RouterGrpc {
    pub fn new(
        engine: Engine,
        keys: KeyCache,
        limiter: crate::ratelimit::RateLimiter,
    ) -> RouterGrpc {
        RouterGrpc {
            engine,
            keys,
            limiter,
        }
    }

    pub fn into_server(self) -> RouterServiceServer<RouterGrpc> {
        RouterServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    async fn start(
        &self,
        request: Request<pb::ChatCompletionRequest>,
        stream: bool,
    ) -> Result<Committed, ApiError> {
        let received_at = Instant::now();
        let key = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .map(str::to_owned);
        let caller = self.keys.authenticate(key.as_deref()).await?;
        self.limiter
            .check(&caller.key_hash, caller.rate_limit_rpm)
            .await?;
        let body = request.into_inner();
        let mut models: Vec<String> = Vec::new();
        for m in std::iter::once(&body.model).chain(&body.models) {
            let m = m.trim();
            if !m.is_empty() && !models.iter().any(|x| x == m) {
                models.push(m.to_owned());
            }
        }
        if models.is_empty() {
            return Err(ApiError::BadRequest("model is required".into()));
        }
        let chat = body
            .request
            .ok_or_else(|| ApiError::BadRequest("request is required".into()))?;
        if chat.messages.is_empty() {
            return Err(ApiError::BadRequest(
                "messages must contain at least one message".into(),
            ));
        }
        let provider: Option<serde_json::Value> = body
            .provider_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ApiError::BadRequest(format!("provider_json is not JSON: {e}")))?;
        let prefs = crate::routing::prefs::parse(provider.as_ref())?;
        let stamp = ids::stamp();
        let job = Job {
            prefs,
            session_key: body.session_id.clone(),
            generation_id: stamp.generation_id,
            created: stamp.created,
            models,
            request: chat,
            stream,
            attribution: Attribution {
                key_hash: caller.key_hash,
                account_id: caller.account_id,
                http_referer: body.http_referer,
                app_title: body.app_title,
                user_agent: Some("grpc".into()),
                session_id: body.session_id,
                origin: None,
            },
            received_at,
            api_type: "completions",
        };
        self.engine.start(job).await
    }
}

fn usage(summary: &Summary) -> pb::Usage {
    pb::Usage {
        tokens: Some(TokenUsage { ..summary.usage }),
        cost_nanos: summary.cost_nanos,
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ChatCompletionChunk, Status>> + Send>>;

#[tonic::async_trait]
impl RouterService for RouterGrpc {
    async fn chat_completion(
        &self,
        request: Request<pb::ChatCompletionRequest>,
    ) -> Result<Response<pb::ChatCompletionResponse>, Status> {
        let mut committed = self.start(request, false).await.map_err(to_status)?;
        let mut message = ChatMessage {
            role: "assistant".into(),
            text: Some(String::new()),
            ..Default::default()
        };
        let (mut finish, mut native, mut summary) = (String::new(), String::new(), None);
        while let Some(event) = committed.events.recv().await {
            match event {
                Event::Delta(d) => {
                    if let Some(c) = d.content {
                        message.text.get_or_insert_with(String::new).push_str(&c);
                    }
                    if let Some(r) = d.reasoning {
                        message
                            .reasoning
                            .get_or_insert_with(String::new)
                            .push_str(&r);
                    }
                    for t in d.tool_calls {
                        let i = t.index as usize;
                        if message.tool_calls.len() <= i {
                            message.tool_calls.resize_with(i + 1, || ToolCall {
                                r#type: "function".into(),
                                ..Default::default()
                            });
                        }
                        let call = &mut message.tool_calls[i];
                        if let Some(id) = t.id {
                            call.id = id;
                        }
                        call.name.push_str(t.name.as_deref().unwrap_or(""));
                        call.arguments
                            .push_str(t.arguments.as_deref().unwrap_or(""));
                    }
                }
                Event::Finish { reason, native: n } => (finish, native) = (reason, n),
                Event::Error { message, .. } => {
                    return Err(Status::unavailable(message));
                }
                Event::Done(s) => summary = Some(s),
            }
        }
        Ok(Response::new(pb::ChatCompletionResponse {
            id: committed.generation_id,
            model: committed.model,
            provider: committed.provider_name,
            created: committed.created,
            choices: vec![pb::Choice {
                index: 0,
                message: Some(message),
                finish_reason: finish,
                native_finish_reason: native,
            }],
            usage: summary.as_ref().map(usage),
        }))
    }

    type StreamChatCompletionStream = ChunkStream;

    async fn stream_chat_completion(
        &self,
        request: Request<pb::ChatCompletionRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let committed = self.start(request, true).await.map_err(to_status)?;
        let stream = futures_util::stream::unfold(Some(committed), |state| async move {
            let mut committed = state?;
            let event = committed.events.recv().await?;
            let mut chunk = pb::ChatCompletionChunk {
                id: committed.generation_id.clone(),
                model: committed.model.clone(),
                provider: committed.provider_name.clone(),
                created: committed.created,
                ..Default::default()
            };
            let mut errored = false;
            match event {
                Event::Delta(d) => {
                    chunk.delta = Some(pb::ChunkDelta {
                        content: d.content,
                        reasoning: d.reasoning,
                        tool_calls: d
                            .tool_calls
                            .into_iter()
                            .map(|t| pb::ToolCallDelta {
                                index: t.index,
                                id: t.id,
                                name: t.name,
                                arguments: t.arguments,
                            })
                            .collect(),
                    })
                }
                Event::Finish { reason, native } => {
                    chunk.finish_reason = Some(reason);
                    chunk.native_finish_reason = Some(native);
                }
                Event::Error {
                    status, message, ..
                } => {
                    chunk.finish_reason = Some("error".into());
                    chunk.error_code = Some(status as u32);
                    chunk.error_message = Some(message);
                    errored = true;
                }
                Event::Done(summary) => chunk.usage = Some(usage(&summary)),
            }
            let next = if errored { None } else { Some(committed) };
            Some((Ok(chunk), next))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
