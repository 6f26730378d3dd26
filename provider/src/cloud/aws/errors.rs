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
                message: DisplayErrorContext(&e).to_string(),
            },
        }
    }
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
