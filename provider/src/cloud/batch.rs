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
    /// Tells this batch from a later one.
    generation: u64,
    /// When the window closes.
    deadline: tokio::time::Instant,
    keys: BTreeSet<String>,
    waiters: Vec<oneshot::Sender<Answer<T>>>,
}

/// Gathers requests for keys made within `window` into one fetch.
///
/// No caller is special: when the window closes, the first waiter to wake takes the batch
/// and fetches for everyone, so a caller that is cancelled (a wait that lost a race with a
/// stop) never strands the others; a waiter whose fetcher was cancelled mid-fetch fetches
/// its own keys.
pub struct Batch<T> {
    window: Duration,
    pending: Mutex<(u64, Option<Pending<T>>)>,
}

impl<T: Clone + Send + Sync + 'static> Batch<T> {
    /// A batch that waits `window` for company before fetching.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            pending: Mutex::new((0, None)),
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
        let (tx, mut rx) = oneshot::channel();
        let (generation, deadline) = {
            let mut guard = self.pending.lock().unwrap();
            let (next, pending) = &mut *guard;
            match pending.as_mut() {
                Some(p) => {
                    p.keys.extend(keys.iter().cloned());
                    p.waiters.push(tx);
                    (p.generation, p.deadline)
                }
                None => {
                    *next += 1;
                    let deadline = tokio::time::Instant::now() + self.window;
                    *pending = Some(Pending {
                        generation: *next,
                        deadline,
                        keys: keys.iter().cloned().collect(),
                        waiters: vec![tx],
                    });
                    (*next, deadline)
                }
            }
        };
        let answer = tokio::select! {
            biased;
            answer = &mut rx => Some(answer),
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let answer = match answer {
            Some(answer) => answer,
            None => {
                // The window is over: whoever wakes first fetches for the whole batch.
                let batch = {
                    let mut guard = self.pending.lock().unwrap();
                    match &guard.1 {
                        Some(p) if p.generation == generation => guard.1.take(),
                        _ => None,
                    }
                };
                match batch {
                    Some(batch) => {
                        let answer = fetch(batch.keys.into_iter().collect()).await.map(Arc::new);
                        for w in batch.waiters {
                            let _ = w.send(answer.clone());
                        }
                        Ok(answer)
                    }
                    None => match rx.await {
                        Ok(answer) => Ok(answer),
                        // The waiter that took the batch was cancelled before it answered.
                        Err(_) => Ok(fetch(keys.to_vec()).await.map(Arc::new)),
                    },
                }
            }
        };
        let all = answer.map_err(|_| CloudError::Transport {
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

    async fn ok_fetch(keys: Vec<String>) -> CloudResult<BTreeMap<String, u32>> {
        Ok(keys.into_iter().map(|k| (k, 7)).collect())
    }

    /// The caller that opened a batch is cancelled during the window: the others are
    /// answered, and so is a caller that comes later.
    #[tokio::test(start_paused = true)]
    async fn a_caller_cancelled_in_the_window_strands_no_one() {
        let batch = Arc::new(Batch::<u32>::new(Duration::from_millis(10)));
        let b = batch.clone();
        let opener = tokio::spawn(async move { b.get(&["a".to_string()], ok_fetch).await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let b = batch.clone();
        let other = tokio::spawn(async move { b.get(&["b".to_string()], ok_fetch).await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        opener.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("stranded")
            .unwrap()
            .unwrap();
        assert_eq!(got, BTreeMap::from([("b".to_string(), 7)]));
        let later = tokio::time::timeout(
            Duration::from_secs(5),
            batch.get(&["c".to_string()], ok_fetch),
        )
        .await
        .expect("stranded");
        assert_eq!(later.unwrap(), BTreeMap::from([("c".to_string(), 7)]));
    }

    /// The caller fetching for a batch is cancelled mid-fetch: the others get an answer,
    /// not an error.
    #[tokio::test(start_paused = true)]
    async fn a_caller_cancelled_mid_fetch_leaves_an_answer() {
        let batch = Arc::new(Batch::<u32>::new(Duration::from_millis(10)));
        let b = batch.clone();
        // This caller's fetch never ends.
        let hung =
            tokio::spawn(
                async move { b.get(&["a".to_string()], |_| std::future::pending()).await },
            );
        tokio::time::sleep(Duration::from_millis(1)).await;
        let b = batch.clone();
        let other = tokio::spawn(async move { b.get(&["b".to_string()], ok_fetch).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        hung.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("stranded")
            .unwrap();
        assert_eq!(got.unwrap(), BTreeMap::from([("b".to_string(), 7)]));
    }
}
