//! Pages in one place: AWS answers a long list a page at a time, each behind the token
//! (`NextToken`, `NextMarker`) of the one before; a reader that stops at page one misses
//! what is on the next (a leftover rule, a policy, an alarm).

use std::future::Future;

use super::super::CloudResult;

/// Every item of every page: `page(token)` reads one page (the first with None) and
/// answers its items and the next token; an empty or absent token ends the list. A token
/// answered twice ends it too (an endpoint that pages in a circle would loop for ever).
pub(super) async fn every_page<T, F, Fut>(mut page: F) -> CloudResult<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = CloudResult<(Vec<T>, Option<String>)>>,
{
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut token = None;
    loop {
        let (items, next) = page(token.take()).await?;
        out.extend(items);
        match next {
            Some(t) if !t.is_empty() && seen.insert(t.clone()) => token = Some(t),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_page_is_read_and_a_circle_ends() {
        // Three pages, tokens "1" and "2".
        let pages = every_page(|token: Option<String>| async move {
            Ok(match token.as_deref() {
                None => (vec![1, 2], Some("1".to_string())),
                Some("1") => (vec![3], Some("2".to_string())),
                _ => (vec![4], Some(String::new())),
            })
        })
        .await
        .unwrap();
        assert_eq!(pages, vec![1, 2, 3, 4]);
        let circle = every_page(|token: Option<String>| async move {
            Ok((vec![token.clone()], Some("again".to_string())))
        })
        .await
        .unwrap();
        assert_eq!(circle.len(), 2, "{circle:?}");
    }
}
