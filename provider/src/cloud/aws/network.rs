//! How the provider reaches AWS: the one HTTPS client (hyper 1, rustls with ring; the
//! SDKs' default clients are left out of the build), the proxy each request goes through,
//! the certificate authorities it trusts, and the stop that ends the calls in flight.
//!
//! Proxies are chosen as hashicorp/aws (Go's `net/http`) chooses them: the provider block's
//! `http_proxy` / `https_proxy` / `no_proxy`, each else its environment variable
//! (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, upper case first); `http_proxy` alone serves
//! HTTPS too, as hashicorp/aws's does. A request to this machine (`localhost`, a loopback
//! address) or to a link-local address (the instance metadata and container credential
//! endpoints) never goes through a proxy. The trusted authorities are the system's, or
//! only the certificates of `custom_ca_bundle`, else `AWS_CA_BUNDLE`, else the profile's
//! `ca_bundle`, as AWS's SDKs and CLI read them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The provider block's network arguments, as written (`~` not yet expanded).
#[derive(Debug, Clone, Default)]
pub struct NetworkSettings {
    /// `http_proxy`: for HTTP, and for HTTPS unless `https_proxy` is given. `""`: none.
    pub http_proxy: Option<String>,
    /// `https_proxy`. `""`: none.
    pub https_proxy: Option<String>,
    /// `no_proxy`: comma-separated hosts, domains, addresses and CIDR blocks reached directly.
    pub no_proxy: Option<String>,
    /// `custom_ca_bundle`: a PEM file whose certificates are the only trusted authorities.
    pub custom_ca_bundle: Option<String>,
}

/// Where requests go: through which proxy, by scheme, and which hosts go direct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// Proxy for `http://` URLs.
    pub http: Option<String>,
    /// Proxy for `https://` URLs.
    pub https: Option<String>,
    /// `NO_PROXY` entries, lower case.
    pub no_proxy: Vec<String>,
}

/// A value that is set and not empty.
fn set(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.trim().is_empty())
}

impl Proxies {
    /// The block's settings over the environment's (`env` reads a variable).
    pub fn resolve(s: &NetworkSettings, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let var = |upper: &str, lower: &str| set(env(upper)).or_else(|| set(env(lower)));
        let http = match &s.http_proxy {
            Some(p) => set(Some(p.clone())),
            None => var("HTTP_PROXY", "http_proxy"),
        };
        let https = match (&s.https_proxy, &s.http_proxy) {
            (Some(p), _) => set(Some(p.clone())),
            (None, Some(p)) => set(Some(p.clone())),
            (None, None) => var("HTTPS_PROXY", "https_proxy"),
        };
        let no_proxy = match &s.no_proxy {
            Some(n) => Some(n.clone()),
            None => var("NO_PROXY", "no_proxy"),
        };
        Self {
            http,
            https,
            no_proxy: no_proxy
                .unwrap_or_default()
                .split(',')
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    /// The proxy a request to `uri` goes through; None: direct.
    pub fn route(&self, uri: &str) -> Option<&str> {
        let (scheme, rest) = uri.split_once("://")?;
        let proxy = match scheme.to_ascii_lowercase().as_str() {
            "http" => self.http.as_deref()?,
            "https" => self.https.as_deref()?,
            _ => return None,
        };
        let (host, port) = split_host_port(host_of(rest));
        let host = host.to_ascii_lowercase();
        let port = port.unwrap_or(if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        });
        if never_proxied(&host) || self.no_proxy.iter().any(|e| bypasses(e, &host, port)) {
            return None;
        }
        Some(proxy)
    }

    /// The distinct proxies in use.
    fn urls(&self) -> Vec<String> {
        let mut out: Vec<String> = self.http.iter().chain(&self.https).cloned().collect();
        out.sort();
        out.dedup();
        out
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (authority, None),
    }
}

/// This machine and link-local addresses (the instance metadata and container credential
/// endpoints): a proxy cannot reach them for us.
fn never_proxied(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
        Err(_) => false,
    }
}

/// Whether `NO_PROXY` entry `entry` sends `host:port` direct, as Go's `httpproxy` reads
/// one: `*` (everything), an address, a CIDR block, a domain (itself and below it),
/// `.domain` or `*.domain` (only below it), each optionally with `:port`.
fn bypasses(entry: &str, host: &str, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        return match (
            net.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        ) {
            (Ok(net), Ok(bits), Ok(ip)) => in_block(ip, net, bits),
            _ => false,
        };
    }
    let (name, want_port) = split_host_port(entry);
    if want_port.is_some_and(|p| p != port) {
        return false;
    }
    if let (Ok(a), Ok(b)) = (name.parse::<IpAddr>(), host.parse::<IpAddr>()) {
        return a == b;
    }
    let name = name.strip_prefix('*').unwrap_or(name);
    if name.starts_with('.') {
        host.ends_with(name)
    } else {
        host == name || host.ends_with(&format!(".{name}"))
    }
}

/// Whether `ip` is inside `net/bits`.
fn in_block(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= width || (ip >> shift) == (net >> shift)
}

/// What is wrong with a proxy URL, if anything (`""` means none and is fine).
pub fn check_proxy_url(attr: &str, url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host = url
        .split_once("://")
        .map(|(_, r)| r.split(['/', '?', '#']).next().unwrap_or_default())
        .unwrap_or_default();
    if !scheme_ok || host.is_empty() || ProxyConfig::all(url).is_err() {
        return Err(format!(
            "{attr} must be an http:// or https:// URL of a proxy, e.g. \"http://proxy.example.com:3128\"; got {url:?}"
        ));
    }
    Ok(())
}

/// The PEM certificates of a CA bundle file, or what is wrong with it (`what` names where
/// the path came from).
pub fn read_ca_bundle(what: &str, path: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {path:?} cannot be read: {e}"))?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        match cert {
            Ok(_) => count += 1,
            Err(e) => return Err(format!("{what} {path:?} is not a PEM file: {e}")),
        }
    }
    if count == 0 {
        return Err(format!(
            "{what} {path:?} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)"
        ));
    }
    Ok(bytes)
}

/// How the client reaches AWS.
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// The proxies.
    pub proxies: Proxies,
    /// PEM certificates trusted instead of the system's authorities.
    pub trust: Option<Vec<u8>>,
}

/// The HTTPS client: direct, or through the proxy its URL's scheme and host call for;
/// calls in flight when a stop is requested (Ctrl-C, SIGTERM, `StopProvider`) end at once,
/// as a user error the SDK does not retry, and a call started after the stop runs as usual
/// (putting traffic back after a stop is such a call).
pub fn https_client(network: &Network, stop: Option<crate::stop::Stop>) -> SharedHttpClient {
    let tls = network.trust.as_ref().map(|pem| {
        TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(pem.clone()))
            .build()
            .expect("a TLS context of certificates already read")
    });
    SharedHttpClient::new(ProviderClient {
        direct: client(None, tls.clone()),
        proxied: network
            .proxies
            .urls()
            .into_iter()
            .map(|url| (url.clone(), client(Some(url), tls.clone())))
            .collect(),
        proxies: Arc::new(network.proxies.clone()),
        stop,
    })
}

/// One HTTPS client (hyper 1, rustls with ring) through `proxy` or direct; its
/// connectors are kept per connector setting, so connections are pooled.
fn client(proxy: Option<String>, tls: Option<TlsContext>) -> SharedHttpClient {
    let proxy = proxy.map(|url| ProxyConfig::all(url).expect("a proxy URL already checked"));
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = aws_smithy_http_client::Connector::builder();
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        let mut b = b.tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ));
        if let Some(t) = &tls {
            b = b.tls_context(t.clone());
        }
        b.proxy_config(proxy.clone().unwrap_or_else(ProxyConfig::disabled))
            .build()
    })
}

#[derive(Debug, Clone)]
struct ProviderClient {
    direct: SharedHttpClient,
    proxied: BTreeMap<String, SharedHttpClient>,
    proxies: Arc<Proxies>,
    stop: Option<crate::stop::Stop>,
}

impl HttpClient for ProviderClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(RoutedConnector {
            direct: self.direct.http_connector(settings, components),
            proxied: self
                .proxied
                .iter()
                .map(|(url, c)| (url.clone(), c.http_connector(settings, components)))
                .collect(),
            proxies: self.proxies.clone(),
            stop: self.stop.clone(),
        })
    }
}

#[derive(Debug)]
struct RoutedConnector {
    direct: SharedHttpConnector,
    proxied: BTreeMap<String, SharedHttpConnector>,
    proxies: Arc<Proxies>,
    stop: Option<crate::stop::Stop>,
}

impl HttpConnector for RoutedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let proxy = self.proxies.route(request.uri());
        let host = host_of(request.uri()).to_string();
        let reaching = match proxy {
            Some(p) => format!("reaching {host} through the proxy {}", without_userinfo(p)),
            None => format!("reaching {host} directly"),
        };
        let via = proxy
            .and_then(|p| self.proxied.get(p))
            .unwrap_or(&self.direct);
        let call = via.call(request);
        let stop = self.stop.clone().filter(|s| s.requested().is_none());
        HttpConnectorFuture::new(async move {
            let answer = match stop {
                None => call.await,
                Some(stop) => tokio::select! {
                    answer = call => answer,
                    why = stop.wait() => return Err(ConnectorError::user(
                        format!("the call was interrupted: {why}").into(),
                    )),
                },
            };
            answer.map_err(|e| say_where(e, reaching))
        })
    }
}

/// The error, of the same kind (the SDK's retries go by it), saying which host it was
/// reaching and whether through a proxy: a proxy, `NO_PROXY` or a name that resolves
/// nowhere is then plain in the message.
fn say_where(e: ConnectorError, reaching: String) -> ConnectorError {
    let (io, timeout, user, other) = (e.is_io(), e.is_timeout(), e.is_user(), e.as_other());
    let metadata = e.connection_metadata().cloned();
    let source: aws_smithy_runtime_api::box_error::BoxError = Box::new(Reaching {
        what: reaching,
        source: e.into_source(),
    });
    let out = if io {
        ConnectorError::io(source)
    } else if timeout {
        ConnectorError::timeout(source)
    } else if user {
        ConnectorError::user(source)
    } else {
        ConnectorError::other(source, other)
    };
    match metadata {
        Some(m) => out.with_connection(m),
        None => out,
    }
}

/// "reaching HOST directly / through the proxy P", then its cause.
#[derive(Debug)]
struct Reaching {
    what: String,
    source: aws_smithy_runtime_api::box_error::BoxError,
}

impl std::fmt::Display for Reaching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Reaching {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The `host[:port]` of a URL.
fn host_of(uri: &str) -> &str {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default()
}

/// A proxy URL without its credentials, for messages.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{scheme}://{}{path}",
                authority.rsplit('@').next().unwrap_or_default()
            )
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn settings(http: Option<&str>, https: Option<&str>, no: Option<&str>) -> NetworkSettings {
        NetworkSettings {
            http_proxy: http.map(String::from),
            https_proxy: https.map(String::from),
            no_proxy: no.map(String::from),
            custom_ca_bundle: None,
        }
    }

    #[test]
    fn the_block_wins_over_the_environment_and_http_proxy_alone_serves_https_too() {
        let e = env(&[
            ("HTTP_PROXY", "http://env-http:1"),
            ("https_proxy", "http://env-https:2"),
            ("NO_PROXY", "internal"),
        ]);
        // (block http, block https, block no_proxy) → (http, https, no_proxy)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            (
                None,
                None,
                None,
                Some("http://env-http:1"),
                Some("http://env-https:2"),
                &["internal"],
            ),
            (
                Some("http://p:3"),
                None,
                None,
                Some("http://p:3"),
                Some("http://p:3"),
                &["internal"],
            ),
            (
                Some("http://p:3"),
                Some(""),
                None,
                Some("http://p:3"),
                None,
                &["internal"],
            ),
            (
                None,
                Some("http://s:4"),
                Some("a.example, .b.example ,"),
                Some("http://env-http:1"),
                Some("http://s:4"),
                &["a.example", ".b.example"],
            ),
            (Some(""), None, Some(""), None, None, &[]),
        ];
        for (bh, bs, bn, h, s, n) in cases {
            let p = Proxies::resolve(&settings(*bh, *bs, *bn), &e);
            assert_eq!(p.http.as_deref(), *h, "{bh:?} {bs:?}");
            assert_eq!(p.https.as_deref(), *s, "{bh:?} {bs:?}");
            assert_eq!(
                p.no_proxy,
                n.iter().map(|x| x.to_string()).collect::<Vec<_>>()
            );
        }
        // Upper case first, as Go reads them.
        let p = Proxies::resolve(
            &NetworkSettings::default(),
            &env(&[("HTTPS_PROXY", "http://U:1"), ("https_proxy", "http://l:1")]),
        );
        assert_eq!(p.https.as_deref(), Some("http://U:1"));
        assert_eq!(
            Proxies::resolve(&NetworkSettings::default(), &env(&[])),
            Proxies::default()
        );
    }

    #[test]
    fn requests_go_direct_to_this_machine_link_local_and_no_proxy_hosts() {
        let p = Proxies {
            http: Some("http://hp:3128".into()),
            https: Some("http://sp:3128".into()),
            no_proxy: [
                "internal.example",
                ".corp.example",
                "10.0.0.0/8",
                "10.9.8.7",
                "aws.local:8443",
                "*.star.example",
                "fd00::/8",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        };
        let cases = [
            (
                "https://ec2.us-east-1.amazonaws.com/",
                Some("http://sp:3128"),
            ),
            ("http://moto.example:5000/", Some("http://hp:3128")),
            (
                "https://user@ec2.amazonaws.com:443/x?y",
                Some("http://sp:3128"),
            ),
            ("http://127.0.0.1:5000/", None),
            ("http://127.3.2.1/", None),
            ("https://localhost:8443/", None),
            ("http://[::1]:5000/", None),
            ("http://169.254.169.254/latest/api/token", None),
            ("http://169.254.170.2/v2/credentials", None),
            ("http://[fd00:ec2::254]/latest", None),
            ("https://internal.example/", None),
            ("https://api.internal.example/", None),
            ("https://notinternal.example/", Some("http://sp:3128")),
            ("https://x.corp.example/", None),
            ("https://corp.example/", Some("http://sp:3128")),
            ("https://a.star.example/", None),
            ("http://10.1.2.3:80/", None),
            ("http://11.1.2.3:80/", Some("http://hp:3128")),
            ("https://aws.local:8443/", None),
            ("https://aws.local/", Some("http://sp:3128")),
            ("http://[fd12::1]/", None),
            ("ftp://x/", None),
        ];
        for (uri, want) in cases {
            assert_eq!(p.route(uri), want, "{uri}");
        }
        let all = Proxies {
            no_proxy: vec!["*".into()],
            ..p.clone()
        };
        assert_eq!(all.route("https://ec2.amazonaws.com/"), None);
        assert_eq!(
            host_of("https://u:p@ec2.amazonaws.com:443/x"),
            "ec2.amazonaws.com:443"
        );
        assert_eq!(
            without_userinfo("http://u:pw@proxy:3128/"),
            "http://proxy:3128/"
        );
        let none = Proxies::default();
        assert_eq!(none.route("https://ec2.amazonaws.com/"), None);
    }

    #[test]
    fn proxy_urls_are_checked() {
        for ok in [
            "",
            "http://proxy:3128",
            "https://user:pw@proxy.example.com:8443",
        ] {
            assert!(check_proxy_url("http_proxy", ok).is_ok(), "{ok}");
        }
        for bad in ["proxy:3128", "socks5://p:1", "http://", "ftp://p"] {
            let e = check_proxy_url("https_proxy", bad).unwrap_err();
            assert!(
                e.starts_with("https_proxy must be an http:// or https:// URL"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_ca_bundle_must_exist_and_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("ca-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = read_ca_bundle("custom_ca_bundle", missing.to_str().unwrap()).unwrap_err();
        assert!(e.contains("cannot be read"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = read_ca_bundle("AWS_CA_BUNDLE", empty.to_str().unwrap()).unwrap_err();
        assert!(
            e.starts_with("AWS_CA_BUNDLE ") && e.contains("holds no certificate"),
            "{e}"
        );
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let good = dir.join("good.pem");
        std::fs::write(&good, pem(cert.cert.der())).unwrap();
        assert!(read_ca_bundle("custom_ca_bundle", good.to_str().unwrap()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A certificate in PEM.
    pub(crate) fn pem(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }
}

#[cfg(test)]
mod tls_tests {
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;
    use tokio_rustls::rustls;

    use super::{https_client, Network};

    /// A certificate authority and a certificate it signed for `localhost`.
    fn authority_and_server() -> (Vec<u8>, rustls::ServerConfig) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        (super::tests::pem(ca.der()).into_bytes(), config)
    }

    /// Calls a local TLS server with the provider's client; the handshakes' outcomes and
    /// what the call said.
    async fn call(network: &Network, config: rustls::ServerConfig) -> (Vec<String>, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut handshakes = Vec::new();
            // The SDK retries a failed call: answer every attempt.
            while let Ok(Ok((tcp, _))) =
                tokio::time::timeout(std::time::Duration::from_secs(2), listener.accept()).await
            {
                handshakes.push(match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let _ = tls.shutdown().await;
                        "accepted".to_string()
                    }
                    Err(e) => e.to_string(),
                });
            }
            handshakes
        });
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .http_client(https_client(network, None))
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("https://localhost:{port}"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        let err = aws_sdk_ec2::Client::from_conf(conf)
            .describe_images()
            .send()
            .await
            .unwrap_err();
        (server.await.unwrap(), format!("{err:?}"))
    }

    /// The provider's HTTPS client speaks TLS with ring, and refuses a certificate no trusted
    /// authority signed: a local TLS server is reached, the handshake gets as far as the
    /// certificate, and the call fails there.
    #[tokio::test]
    async fn the_https_client_does_tls_and_refuses_an_untrusted_certificate() {
        let (_, server) = authority_and_server();
        let (handshakes, said) = call(&Network::default(), server).await;
        assert!(
            said.contains("UnknownIssuer") || said.contains("certificate"),
            "the call fails on the certificate: {said}"
        );
        assert!(!handshakes.is_empty(), "the client reached the server");
        assert!(
            handshakes.iter().all(|h| h != "accepted"),
            "no handshake completed: {handshakes:?}"
        );
    }

    /// With the authority's certificate as its CA bundle, the same server is trusted.
    #[tokio::test]
    async fn a_ca_bundle_makes_its_authority_trusted() {
        let (ca, server) = authority_and_server();
        let network = Network {
            trust: Some(ca),
            ..Network::default()
        };
        let (handshakes, said) = call(&network, server).await;
        assert!(
            handshakes.iter().any(|h| h == "accepted"),
            "the handshake completed: {handshakes:?} ({said})"
        );
    }
}
