//! Error mapping in one place: an SDK error becomes a [`CloudError`] that keeps AWS's code
//! and message (or says the transport failed); a delete that finds nothing is done; a
//! create whose answer was lost adopts the object it made, never a stranger's.

use std::collections::BTreeMap;

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::super::{CloudError, CloudResult};

/// Turns an SDK error into a [`CloudError`] that keeps AWS's code and message.
/// A delete's answer: done, or the object was not there — AWS's error code and message
/// say so as `absent` recognises them ("absent is fine" for every delete).
pub(super) fn deleted<O, E>(
    result: Result<O, E>,
    absent: impl Fn(&str, &str) -> bool,
    action: impl Into<String>,
) -> CloudResult<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if absent(
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default(),
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(err(action)(e)),
    }
}

pub(super) fn err<E>(action: impl Into<String>) -> impl FnOnce(E) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e: E| {
        let action = action.into();
        match e.code() {
            Some(code) => CloudError::Api {
                action,
                code: code.to_string(),
                message: e.message().unwrap_or_default().to_string(),
            },
            None => CloudError::Transport {
                action,
                message: with_hint(DisplayErrorContext(&e).to_string()),
            },
        }
    }
}

/// A transport failure's message, with what to do when the cause is a setting.
fn with_hint(message: String) -> String {
    let hint = if message.contains("invalid peer certificate") {
        "the endpoint's certificate is not signed by an authority this machine trusts: behind a proxy that re-signs TLS, name its authority's certificate in custom_ca_bundle (or AWS_CA_BUNDLE)"
    } else if message.contains("dns error") && message.contains("directly") {
        "the name does not resolve from here: behind a proxy, set http_proxy / https_proxy (or HTTPS_PROXY) and check no_proxy (NO_PROXY)"
    } else {
        return message;
    };
    format!("{hint}. {message}")
}

/// Whether an object found by name (its tags) is the one this call was creating: same
/// release, same fleet fingerprint. A create whose answer was lost (a timeout, a reset after
/// AWS acted) is retried by the SDK and meets its own object: it is adopted, never a
/// stranger's.
pub(super) fn made_by_this_call(
    found: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> bool {
    [
        crate::naming::TAG_RELEASE_NAME,
        crate::naming::TAG_FINGERPRINT,
    ]
    .iter()
    .all(|k| wanted.get(*k).is_some() && found.get(*k) == wanted.get(*k))
}

#[cfg(test)]
mod tests {
    use super::with_hint;

    #[test]
    fn a_transport_failure_caused_by_a_setting_says_which() {
        let tls = with_hint("dispatch failure: io error: reaching 127.0.0.1:1 directly: client error (Connect): TLS handshake failed: invalid peer certificate: UnknownIssuer".into());
        assert!(
            tls.contains("name its authority's certificate in custom_ca_bundle"),
            "{tls}"
        );
        assert!(tls.ends_with("UnknownIssuer"), "the cause is kept: {tls}");
        let dns = with_hint("dispatch failure: io error: reaching x.invalid:1 directly: client error (Connect): dns error: failed to lookup address information".into());
        assert!(dns.contains("set http_proxy / https_proxy"), "{dns}");
        let through = "dispatch failure: io error: reaching x:1 through the proxy http://p:1: client error (Connect): dns error: no";
        assert_eq!(
            with_hint(through.into()),
            through,
            "a proxy's own trouble is its own"
        );
        let other = "dispatch failure: timeout";
        assert_eq!(with_hint(other.into()), other);
    }
}
