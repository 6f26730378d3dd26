//! Shared observations. Terraform applies many releases at once in one provider process
//! (`-parallelism`); their waits poll the same kinds of things. A [`Batch`] gathers the
//! requests made within a short window into one call for every key asked for (one
//! DescribeAutoScalingGroups for many groups, one DescribeAlarms for many alarms, one
//! DescribeTargetHealth per target group however many ask), and hands each caller its part.
//! The engine aligns its steady-state polls to a shared clock so that concurrent waiters
//! ask within the same window.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{CloudError, CloudResult};

type Answer<T> = CloudResult<Arc<BTreeMap<String, T>>>;

struct Pending<T> {
    keys: BTreeSet<String>,
    waiters: Vec<oneshot::Sender<Answer<T>>>,
}

/// Gathers requests for keys made within `window` into one fetch.
pub struct Batch<T> {
    window: Duration,
    pending: Mutex<Option<Pending<T>>>,
}

impl<T: Clone + Send + Sync + 'static> Batch<T> {
    /// A batch that waits `window` for company before fetching.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            pending: Mutex::new(None),
        }
    }

    /// The values of `keys` (absent keys are absent), fetched together with whatever
    /// other callers asked for within the window. `fetch` is called by one caller only, with
    /// every key asked for, and returns the values it found by key.
    pub async fn get<F, Fut>(&self, keys: &[String], fetch: F) -> CloudResult<BTreeMap<String, T>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = CloudResult<BTreeMap<String, T>>>,
    {
        let (tx, rx) = oneshot::channel();
        let leader = {
            let mut pending = self.pending.lock().unwrap();
            match pending.as_mut() {
                Some(p) => {
                    p.keys.extend(keys.iter().cloned());
                    p.waiters.push(tx);
                    false
                }
                None => {
                    *pending = Some(Pending {
                        keys: keys.iter().cloned().collect(),
                        waiters: vec![tx],
                    });
                    true
                }
            }
        };
        if leader {
            tokio::time::sleep(self.window).await;
            let batch = self.pending.lock().unwrap().take();
            if let Some(batch) = batch {
                let answer = fetch(batch.keys.into_iter().collect()).await.map(Arc::new);
                for w in batch.waiters {
                    let _ = w.send(answer.clone());
                }
            }
        }
        let all = rx.await.map_err(|_| CloudError::Transport {
            action: "sharing an observation".into(),
            message: "the call that was to answer it was dropped".into(),
        })??;
        Ok(keys
            .iter()
            .filter_map(|k| all.get(k).map(|v| (k.clone(), v.clone())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch() {
        let batch = Arc::new(Batch::<u32>::new(Duration::from_millis(10)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20u32 {
            let (batch, fetches) = (batch.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                let key = format!("g{i}");
                batch
                    .get(std::slice::from_ref(&key), |keys| async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        Ok(keys
                            .iter()
                            .map(|k| (k.clone(), k[1..].parse::<u32>().unwrap()))
                            .collect())
                    })
                    .await
                    .unwrap()
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let got = t.await.unwrap();
            assert_eq!(got, BTreeMap::from([(format!("g{i}"), i as u32)]));
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "one fetch for 20 callers"
        );
        // A later request makes a fetch of its own.
        batch
            .get(&["g1".to_string()], |_| async { Ok(BTreeMap::new()) })
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_reaches_every_caller() {
        let batch = Arc::new(Batch::<u32>::new(Duration::from_millis(10)));
        let b2 = batch.clone();
        let other = tokio::spawn(async move {
            b2.get(&["b".to_string()], |_| async { Ok(BTreeMap::new()) })
                .await
        });
        let mine = batch
            .get(&["a".to_string()], |_| async {
                Err(CloudError::Transport {
                    action: "x".into(),
                    message: "down".into(),
                })
            })
            .await;
        // Whichever came first fetched; both got its answer.
        let theirs = other.await.unwrap();
        assert_eq!(mine.is_err(), theirs.is_err());
    }
}
