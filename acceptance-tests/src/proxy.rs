//! A fault-injecting HTTP proxy between the provider and the local AWS. It forwards every
//! call, counts calls by action, and by configuration rewrites what AWS says (target health
//! reported unhealthy), so that tests can make a fleet fail its health checks.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What the proxy does to the traffic it forwards.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Report every target of every target group as unhealthy.
    pub unhealthy_targets: bool,
}

#[derive(Debug, Default)]
struct Shared {
    faults: Faults,
    calls: BTreeMap<String, u64>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The AWS action of a request: the `Action` form field (query protocols) or the
/// `X-Amz-Target` header (JSON protocols).
fn action_of(headers: &hyper::HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_string()
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. the emulator's URL) on a free loopback port.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_string();
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = s2.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let shared = shared.clone();
                        let client = client.clone();
                        let upstream = upstream.clone();
                        async move {
                            Ok::<_, Infallible>(forward(req, &upstream, &client, &shared).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().unwrap().faults = faults;
    }

    /// Calls seen so far, by action.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.lock().unwrap().calls.clone()
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    shared: &Arc<Mutex<Shared>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let action = action_of(&parts.headers, &body);
    let faults = {
        let mut s = shared.lock().unwrap();
        *s.calls.entry(action.clone()).or_default() += 1;
        s.faults.clone()
    };
    let uri = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = Request::builder().method(parts.method).uri(uri);
    for (k, v) in parts.headers.iter() {
        if k != "host" {
            out = out.header(k, v);
        }
    }
    let out = out.body(Full::new(body)).expect("request builds");
    let resp = match client.request(out).await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(format!("proxy: {e}"))))
                .unwrap()
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    let mut rbody = rbody
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if faults.unhealthy_targets && action == "DescribeTargetHealth" {
        let text = String::from_utf8_lossy(&rbody).replace(
            "<State>healthy</State>",
            "<State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason>",
        );
        rbody = Bytes::from(text);
    }
    rparts.headers.remove("content-length");
    rparts.headers.remove("transfer-encoding");
    Response::from_parts(rparts, Full::new(rbody))
}
