//! The release lease: at most one apply changes a release at a time.
//!
//! The lease is a launch template `<name>-lease` whose tags say who holds it and until when.
//! Launch template names are unique in a region, so creating it is an atomic test-and-set
//! in AWS itself; no other store is needed. The holder renews it every
//! [`RENEW_EVERY`]; a lease whose expiry has passed (a runner that died elsewhere) or whose
//! holder was a process on this host that no longer runs (a killed apply, retried here) is
//! stale and may be taken over.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cloud::Cloud;
use crate::engine::{EngineError, EngineResult, TAG_PHASE, TAG_RELEASE_NAME};
use crate::log;

/// Tag: host name of the holder.
pub const TAG_HOST: &str = "immutable:lease-host";
/// Tag: process ID of the holder (the provider process).
pub const TAG_PID: &str = "immutable:lease-pid";
/// Tag: when the lease was taken (RFC 3339).
pub const TAG_SINCE: &str = "immutable:lease-since";
/// Tag: when the lease expires unless renewed (Unix seconds).
pub const TAG_EXPIRES: &str = "immutable:lease-expires";
/// Tag: a value unique to one acquisition, so that a create retried after its answer was
/// lost recognises its own lease.
pub const TAG_NONCE: &str = "immutable:lease-nonce";

/// How long a lease lives without renewal.
pub const TTL: Duration = Duration::from_secs(120);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);

/// A held lease; [`Lease::release`] gives it back (dropping it only stops renewal, and the
/// lease then expires after [`TTL`]).
pub struct Lease {
    cloud: Cloud,
    name: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Lease {
    /// Gives the lease back.
    pub async fn release(self) {
        self.renewal.abort();
        if let Err(e) = self.cloud.ledger.delete_lease(&self.name).await {
            log::warn(format!(
                "release {}: giving back the lease failed ({e}); it expires by itself",
                self.name
            ));
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// This host's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether a process of this host is running (a zombie is not).
pub fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

/// Whether a lease with these tags may be taken over, and why.
pub fn stale(
    tags: &BTreeMap<String, String>,
    now: u64,
    host: &str,
    runs: impl Fn(u32) -> bool,
) -> Option<String> {
    let expires: u64 = tags
        .get(TAG_EXPIRES)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    if expires <= now {
        return Some("it expired".into());
    }
    let pid: Option<u32> = tags.get(TAG_PID).and_then(|p| p.parse().ok());
    if tags.get(TAG_HOST).map(String::as_str) == Some(host) {
        if let Some(pid) = pid {
            if !runs(pid) {
                return Some(format!("its holder, process {pid} on this host, is gone"));
            }
        }
    }
    None
}

fn holder_tags(name: &str, since: &str, nonce: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_NONCE.to_string(), nonce.to_string()),
        (TAG_RELEASE_NAME.to_string(), name.to_string()),
        (TAG_PHASE.to_string(), "lease".to_string()),
        (TAG_HOST.to_string(), host_name()),
        (TAG_PID.to_string(), std::process::id().to_string()),
        (TAG_SINCE.to_string(), since.to_string()),
        (
            TAG_EXPIRES.to_string(),
            (unix_now() + TTL.as_secs()).to_string(),
        ),
    ])
}

fn rfc3339_of(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Takes the lease of release `name`, or refuses with who holds it.
pub async fn acquire(cloud: &Cloud, name: &str) -> EngineResult<Lease> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let since = rfc3339_of(unix_now());
    let nonce = format!(
        "{}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    for _ in 0..2 {
        let created = cloud
            .ledger
            .create_lease(name, &holder_tags(name, &since, &nonce))
            .await?;
        let tags = if created {
            None
        } else {
            cloud.ledger.read_lease(name).await?
        };
        // Ours: just created, or created by this very call before its answer was lost.
        if created || tags.as_ref().and_then(|t| t.get(TAG_NONCE)) == Some(&nonce) {
            let renew_cloud = cloud.clone();
            let renew_name = name.to_string();
            let renew_since = since.clone();
            let renew_nonce = nonce.clone();
            let renewal = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let tags = holder_tags(&renew_name, &renew_since, &renew_nonce);
                    if let Err(e) = renew_cloud.ledger.renew_lease(&renew_name, &tags).await {
                        log::warn(format!("release {renew_name}: renewing the lease: {e}"));
                    }
                }
            });
            return Ok(Lease {
                cloud: cloud.clone(),
                name: name.to_string(),
                renewal,
            });
        }
        let Some(tags) = tags else {
            continue; // given back in between: try again
        };
        match stale(&tags, unix_now(), &host_name(), process_runs) {
            Some(why) => {
                log::warn(format!("release {name}: taking over its lease: {why}"));
                cloud.ledger.delete_lease(name).await?;
            }
            None => {
                let get = |k: &str| tags.get(k).cloned().unwrap_or_else(|| "?".into());
                let expires = tags
                    .get(TAG_EXPIRES)
                    .and_then(|e| e.parse().ok())
                    .map(rfc3339_of)
                    .unwrap_or_else(|| "?".into());
                return Err(EngineError::Refused(format!(
                    "release {name} is being changed by another apply: its lease (launch template {name}-lease) is held by process {} on host {} since {}. Run this apply again when that one has finished. A lease is renewed while its apply runs and expires at {expires} otherwise; if that runner is gone for good, it can also be removed by deleting launch template {name}-lease",
                    get(TAG_PID),
                    get(TAG_HOST),
                    get(TAG_SINCE),
                )));
            }
        }
    }
    Err(EngineError::Refused(format!(
        "release {name}: its lease could not be taken (another apply took it at the same moment); run this apply again"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(host: &str, pid: u32, expires: u64) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_HOST.to_string(), host.to_string()),
            (TAG_PID.to_string(), pid.to_string()),
            (TAG_EXPIRES.to_string(), expires.to_string()),
        ])
    }

    #[test]
    fn stale_table() {
        let alive = |_| true;
        let dead = |_| false;
        // Live holder elsewhere, not expired: held.
        assert_eq!(stale(&tags("other", 7, 200), 100, "me", dead), None);
        // Expired: stale whoever held it.
        assert!(stale(&tags("other", 7, 100), 100, "me", alive).is_some());
        // Same host, holder process gone: stale before expiry.
        assert!(stale(&tags("me", 7, 200), 100, "me", dead)
            .unwrap()
            .contains("process 7"));
        // Same host, holder runs: held.
        assert_eq!(stale(&tags("me", 7, 200), 100, "me", alive), None);
        // Unreadable expiry counts as expired.
        assert!(stale(&BTreeMap::new(), 100, "me", alive).is_some());
    }

    #[test]
    fn this_process_runs() {
        assert!(process_runs(std::process::id()));
        assert!(!process_runs(u32::MAX - 1));
    }

    #[tokio::test]
    async fn second_holder_is_refused_until_the_first_gives_back() {
        use crate::cloud::fake::FakeCloud;
        use std::sync::Arc;
        let cloud = Cloud::from_one(Arc::new(FakeCloud::new("l", "ami-a")));
        let first = acquire(&cloud, "web").await.unwrap();
        let refused = acquire(&cloud, "web").await.err().unwrap().to_string();
        assert!(
            refused.contains("being changed by another apply"),
            "{refused}"
        );
        assert!(refused.contains(&std::process::id().to_string()));
        first.release().await;
        acquire(&cloud, "web").await.unwrap().release().await;
    }
}
