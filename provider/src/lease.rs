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
use crate::log;
use crate::naming::{TAG_PHASE, TAG_RELEASE_NAME};
use crate::stop::Stop;

/// Why a lease could not be taken: its own errors, not the engine's (the engine turns them
/// into its own: the lease sits below it and knows nothing of it).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another apply holds it, or took it at the same moment: the message says who.
    #[error("{0}")]
    Held(String),
    /// An AWS call failed after its retries.
    #[error(transparent)]
    Cloud(#[from] crate::cloud::CloudError),
}

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
/// Tag: the holder's PID namespace and boot (see [`pid_space`]): a PID means something only
/// in the namespace of the same boot that gave it.
pub const TAG_PID_SPACE: &str = "immutable:lease-pid-space";

/// How long a lease lives without renewal.
pub const TTL: Duration = Duration::from_secs(120);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);

/// A held lease; [`Lease::release`] gives it back (dropping it only stops renewal, and the
/// lease then expires after [`TTL`]).
pub struct Lease {
    cloud: Cloud,
    name: String,
    /// The ID of the object that holds this acquisition's lease.
    id: String,
    renewal: tokio::task::JoinHandle<()>,
    /// This release's stop: requested when the lease is lost (and with the process's).
    stop: Stop,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Lease {
    /// The stop of the release that holds the lease: the work done under it stops when the
    /// lease is lost, and only that work.
    pub fn stop(&self) -> Stop {
        self.stop.clone()
    }

    /// Gives the lease back (deleting this acquisition's lease object by its ID: a lease
    /// another holder made since is never touched); a failure is logged, the lease expires.
    pub async fn release(self) {
        self.renewal.abort();
        if let Err(e) = self.cloud.ledger.delete_lease(&self.id).await {
            log::warn(format!(
                "release {}: giving back the lease failed ({e}); it expires by itself",
                self.name
            ));
        }
    }
}

/// Renews the lease every [`RENEW_EVERY`] while it is still this acquisition's (same ID,
/// same nonce). A lease found taken by another holder (ours expired while renewals failed)
/// is not renewed again: this release's apply is asked to stop (`stop`, the lease's own:
/// the process's other releases go on), so that two runners never act at once.
async fn renew(cloud: Cloud, name: String, id: String, since: String, nonce: String, stop: Stop) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let still_ours = match cloud.ledger.read_lease(&name).await {
            Ok(Some(rec)) => rec.id == id && rec.tags.get(TAG_NONCE) == Some(&nonce),
            Ok(None) => false,
            Err(e) => {
                log::warn(format!("release {name}: reading the lease: {e}"));
                continue;
            }
        };
        if !still_ours {
            let why = format!(
                "the lease of release {name} was lost (it expired while renewals failed, and another apply took it or it was deleted)"
            );
            log::warn(format!("release {name}: {why}; stopping"));
            stop.request(&why);
            return;
        }
        let tags = holder_tags(&name, &since, &nonce);
        if let Err(e) = cloud.ledger.renew_lease(&id, &tags).await {
            log::warn(format!("release {name}: renewing the lease: {e}"));
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
/// The PID namespace of this process and the boot it runs in, e.g.
/// `pid:[4026531836]@5f1c...`: two processes compare PIDs only when this is equal (same-named
/// hosts are common among containers and CI runners).
pub fn pid_space() -> String {
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default();
    if ns.is_empty() || boot.is_empty() {
        String::new()
    } else {
        format!("{ns}@{boot}")
    }
}

pub fn stale(
    tags: &BTreeMap<String, String>,
    now: u64,
    host: &str,
    space: &str,
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
    // A PID is checked only on the same host in the same PID namespace of the same boot:
    // another runner with this host name may hold a live lease under the same number.
    let same_space =
        !space.is_empty() && tags.get(TAG_PID_SPACE).map(String::as_str) == Some(space);
    if tags.get(TAG_HOST).map(String::as_str) == Some(host) && same_space {
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
        (TAG_PID_SPACE.to_string(), pid_space()),
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

/// Takes the lease of release `name`, or refuses with who holds it. The lease's stop is a
/// child of `stop` (the engine's).
pub async fn acquire(cloud: &Cloud, name: &str, stop: &Stop) -> Result<Lease, LeaseError> {
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
        let found = match created {
            Some(_) => None,
            None => cloud.ledger.read_lease(name).await?,
        };
        // Ours when just made, or when a create whose answer was lost made it (its nonce).
        let ours = created.clone().or_else(|| {
            found
                .as_ref()
                .filter(|r| r.tags.get(TAG_NONCE) == Some(&nonce))
                .map(|r| r.id.clone())
        });
        if let Some(id) = ours {
            let stop = stop.child();
            let renewal = tokio::spawn(renew(
                cloud.clone(),
                name.to_string(),
                id.clone(),
                since.clone(),
                nonce.clone(),
                stop.clone(),
            ));
            return Ok(Lease {
                cloud: cloud.clone(),
                name: name.to_string(),
                id,
                renewal,
                stop,
            });
        }
        let Some(found) = found else {
            continue; // given back in between: try again
        };
        let tags = found.tags.clone();
        match stale(&tags, unix_now(), &host_name(), &pid_space(), process_runs) {
            Some(why) => {
                log::warn(format!("release {name}: taking over its lease: {why}"));
                // By ID: if another runner took it over in between, theirs has another ID
                // and stays; the next create then finds it and is refused.
                cloud.ledger.delete_lease(&found.id).await?;
            }
            None => {
                let get = |k: &str| tags.get(k).cloned().unwrap_or_else(|| "?".into());
                let expires = tags
                    .get(TAG_EXPIRES)
                    .and_then(|e| e.parse().ok())
                    .map(rfc3339_of)
                    .unwrap_or_else(|| "?".into());
                return Err(LeaseError::Held(format!(
                    "release {name} is being changed by another apply: its lease (launch template {name}-lease) is held by process {} on host {} since {}. Run this apply again when that one has finished. A lease is renewed while its apply runs and expires at {expires} otherwise; if that runner is gone for good, it can also be removed by deleting launch template {name}-lease",
                    get(TAG_PID),
                    get(TAG_HOST),
                    get(TAG_SINCE),
                )));
            }
        }
    }
    Err(LeaseError::Held(format!(
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
            (TAG_PID_SPACE.to_string(), "ns".to_string()),
            (TAG_EXPIRES.to_string(), expires.to_string()),
        ])
    }

    #[test]
    fn stale_table() {
        let alive = |_| true;
        let dead = |_| false;
        // Live holder elsewhere, not expired: held.
        assert_eq!(stale(&tags("other", 7, 200), 100, "me", "ns", dead), None);
        // Expired: stale whoever held it.
        assert!(stale(&tags("other", 7, 100), 100, "me", "ns", alive).is_some());
        // Same host, holder process gone: stale before expiry.
        assert!(stale(&tags("me", 7, 200), 100, "me", "ns", dead)
            .unwrap()
            .contains("process 7"));
        // Same host, holder runs: held.
        assert_eq!(stale(&tags("me", 7, 200), 100, "me", "ns", alive), None);
        // Same host name, but another PID namespace (or boot), or a holder that did not say:
        // its PID means nothing here, the lease holds until it expires.
        assert_eq!(
            stale(&tags("me", 7, 200), 100, "me", "other-ns", dead),
            None
        );
        let mut unsaid = tags("me", 7, 200);
        unsaid.remove(TAG_PID_SPACE);
        assert_eq!(stale(&unsaid, 100, "me", "ns", dead), None);
        assert_eq!(stale(&tags("me", 7, 200), 100, "me", "", dead), None);
        // Unreadable expiry counts as expired.
        assert!(stale(&BTreeMap::new(), 100, "me", "ns", alive).is_some());
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
        let first = acquire(&cloud, "web", &Stop::new()).await.unwrap();
        let refused = acquire(&cloud, "web", &Stop::new())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("being changed by another apply"),
            "{refused}"
        );
        assert!(refused.contains(&std::process::id().to_string()));
        first.release().await;
        acquire(&cloud, "web", &Stop::new())
            .await
            .unwrap()
            .release()
            .await;
    }

    #[test]
    fn this_process_has_a_pid_space() {
        assert!(pid_space().starts_with("pid:["), "{}", pid_space());
    }

    #[tokio::test]
    async fn a_takeover_deletes_only_the_stale_lease_it_judged() {
        use crate::cloud::fake::FakeCloud;
        use std::sync::Arc;
        let fake = Arc::new(FakeCloud::new("l", "ami-a"));
        let cloud = Cloud::from_one(fake.clone());
        // A holder that expired long ago.
        let mut old = tags("elsewhere", 7, 1);
        old.insert(TAG_NONCE.into(), "old".into());
        let old_id = cloud
            .ledger
            .create_lease("web", &old)
            .await
            .unwrap()
            .unwrap();
        let lease = acquire(&cloud, "web", &Stop::new()).await.unwrap();
        let now = cloud.ledger.read_lease("web").await.unwrap().unwrap();
        assert_ne!(now.id, old_id);
        // The old holder comes back and gives back "its" lease: by its ID, so ours stays.
        cloud.ledger.delete_lease(&old_id).await.unwrap();
        assert_eq!(
            cloud.ledger.read_lease("web").await.unwrap().map(|r| r.id),
            Some(now.id)
        );
        lease.release().await;
        assert!(cloud.ledger.read_lease("web").await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_taken_by_another_holder_is_not_renewed_and_that_release_alone_stops() {
        use crate::cloud::fake::FakeCloud;
        use std::sync::Arc;
        let fake = Arc::new(FakeCloud::new("l", "ami-a"));
        let cloud = Cloud::from_one(fake.clone());
        let process = Stop::new();
        let lease = acquire(&cloud, "web", &process).await.unwrap();
        let other = acquire(&cloud, "api", &process).await.unwrap();
        let mine = cloud.ledger.read_lease("web").await.unwrap().unwrap();
        // Another runner deleted it (as after an expiry) and took it.
        cloud.ledger.delete_lease(&mine.id).await.unwrap();
        let mut theirs = tags("elsewhere", 9, u64::MAX);
        theirs.insert(TAG_NONCE.into(), "theirs".into());
        cloud
            .ledger
            .create_lease("web", &theirs)
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(RENEW_EVERY * 2 + Duration::from_secs(1)).await;
        let now = cloud.ledger.read_lease("web").await.unwrap().unwrap();
        assert_eq!(now.tags.get(TAG_NONCE).map(String::as_str), Some("theirs"));
        assert_eq!(
            now.tags.get(TAG_HOST).map(String::as_str),
            Some("elsewhere")
        );
        assert!(lease
            .stop()
            .requested()
            .is_some_and(|w| w.contains("lease of release web was lost")));
        // The process and its other release go on; a stop of the process stops it too.
        assert_eq!(process.requested(), None);
        assert_eq!(other.stop().requested(), None);
        process.request("Ctrl-C");
        assert_eq!(other.stop().requested().as_deref(), Some("Ctrl-C"));
        assert_eq!(other.stop().wait().await, "Ctrl-C");
        drop(lease);
    }
}
