//! `switchyard health`: a probe for container health checks, so images need
//! no extra tools. gRPC services answer `grpc.health.v1`; the router's HTTP
//! side answers `/readyz`.

use std::time::Duration;

use anyhow::{Context, bail};

const TIMEOUT: Duration = Duration::from_secs(3);

pub async fn probe(grpc: Option<String>, http: Option<String>) -> anyhow::Result<()> {
    match (grpc, http) {
        (Some(url), _) => grpc_probe(&url).await,
        (None, Some(url)) => http_probe(&url).await,
        (None, None) => bail!("give --grpc or --http"),
    }
}

async fn grpc_probe(url: &str) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("health check")?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => bail!("{url} is {}", other.as_str_name()),
    }
}

async fn http_probe(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().context("--http must be a URL")?;
    let authority = uri.authority().context("--http needs host:port")?.clone();
    let stream = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(authority.as_str()))
        .await
        .context("connect timed out")??;
    // A minimal HTTP/1.1 GET; readiness answers are tiny.
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = stream;
    stream.write_all(request.as_bytes()).await?;
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(TIMEOUT, stream.read(&mut head))
        .await
        .context("read timed out")??;
    let status_line = String::from_utf8_lossy(&head[..n]);
    if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        bail!(
            "{url} answered {}",
            status_line.lines().next().unwrap_or("")
        )
    }
}
