//! Pages the emulator does not make: `DescribeTargetGroups`, `DescribePolicies` and
//! `DescribeLaunchTemplates` answer every item at once in the emulator. The proxy takes the
//! page token out of the request (the emulator does not know the proxy's tokens), asks for
//! everything, and answers one page of it with a token to the next (`fault-proxy-N`, N the
//! index of the first item of the next page), as AWS answers a long list.

use super::form_field;

/// How an action pages: the request's token parameter, the list's tag, the item's tag and
/// the answer's token tag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paging {
    request_token: &'static str,
    list: &'static str,
    item: &'static str,
    answer_token: &'static str,
}

/// The actions the proxy pages itself.
pub fn paging_of(action: &str) -> Option<Paging> {
    Some(match action {
        "DescribeTargetGroups" => Paging {
            request_token: "Marker",
            list: "TargetGroups",
            item: "member",
            answer_token: "NextMarker",
        },
        "DescribePolicies" => Paging {
            request_token: "NextToken",
            list: "ScalingPolicies",
            item: "member",
            answer_token: "NextToken",
        },
        "DescribeLaunchTemplates" => Paging {
            request_token: "NextToken",
            list: "launchTemplates",
            item: "item",
            answer_token: "nextToken",
        },
        _ => return None,
    })
}

/// The request with the proxy's token left out, and where the page starts.
pub fn request(p: Paging, body: &str) -> (String, usize) {
    let start = form_field(body, p.request_token)
        .and_then(|t| t.strip_prefix("fault-proxy-")?.parse().ok())
        .unwrap_or(0);
    let kept: Vec<&str> = body
        .split('&')
        .filter(|kv| !kv.starts_with(&format!("{}=", p.request_token)))
        .collect();
    (kept.join("&"), start)
}

/// One page of `size` items from `start` of the answer's list, with a token to the next.
/// An answer without the list (an error) is left as it is.
pub fn answer(p: Paging, xml: &str, start: usize, size: usize) -> String {
    let Some((before, items, after)) = split(xml, p.list, p.item) else {
        return xml.to_string();
    };
    let end = (start + size).min(items.len());
    let page = items.get(start..end).unwrap_or_default().concat();
    let token = if end < items.len() {
        format!("<{t}>fault-proxy-{end}</{t}>", t = p.answer_token)
    } else {
        String::new()
    };
    // The emulator's own token (it says there is no more) gives way to the proxy's.
    let after = strip_element(&after, p.answer_token);
    format!("{before}{page}</{}>{token}{after}", p.list)
}

/// (everything up to and including `<list>`, each `<item>…</item>` of the list at its top
/// level, everything after `</list>`); None when the answer has no such list.
fn split(xml: &str, list: &str, item: &str) -> Option<(String, Vec<String>, String)> {
    let open = format!("<{list}>");
    let close = format!("</{list}>");
    let empty = format!("<{list}/>");
    if let Some(i) = xml.find(&empty) {
        return Some((
            format!("{}{open}", &xml[..i]),
            Vec::new(),
            xml[i + empty.len()..].to_string(),
        ));
    }
    let i = xml.find(&open)? + open.len();
    let (item_open, item_close) = (format!("<{item}>"), format!("</{item}>"));
    let mut items = Vec::new();
    let mut at = i;
    loop {
        let rest = &xml[at..];
        let next_item = rest.find(&item_open);
        let list_end = rest.find(&close)?;
        match next_item {
            Some(k) if k < list_end => {
                // The item's end, counting items nested in it (lists of its own).
                let mut depth = 0usize;
                let mut j = at + k;
                loop {
                    let r = &xml[j..];
                    let o = r.find(&item_open);
                    let c = r.find(&item_close)?;
                    match o {
                        Some(o) if o < c => {
                            depth += 1;
                            j += o + item_open.len();
                        }
                        _ => {
                            depth -= 1;
                            j += c + item_close.len();
                            if depth == 0 {
                                break;
                            }
                        }
                    }
                }
                items.push(xml[at + k..j].to_string());
                at = j;
            }
            _ => {
                return Some((
                    xml[..i].to_string(),
                    items,
                    xml[at + list_end + close.len()..].to_string(),
                ))
            }
        }
    }
}

fn strip_element(xml: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    match (xml.find(&open), xml.find(&close)) {
        (Some(i), Some(j)) if i < j => format!("{}{}", &xml[..i], &xml[j + close.len()..]),
        _ => xml.replace(&format!("<{tag}/>"), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "<R><Result><TargetGroups><member><Name>a</Name><LoadBalancerArns><member>lb</member></LoadBalancerArns></member><member><Name>b</Name><LoadBalancerArns/></member><member><Name>c</Name></member></TargetGroups><NextMarker/></Result></R>";

    #[test]
    fn pages_of_two_with_nested_lists_kept_whole() {
        let p = paging_of("DescribeTargetGroups").unwrap();
        let first = answer(p, ANSWER, 0, 2);
        assert!(first.contains("<Name>a</Name><LoadBalancerArns><member>lb</member></LoadBalancerArns></member><member><Name>b</Name>"), "{first}");
        assert!(!first.contains("<Name>c</Name>"), "{first}");
        assert!(
            first.contains("</TargetGroups><NextMarker>fault-proxy-2</NextMarker></Result>"),
            "{first}"
        );
        let second = answer(p, ANSWER, 2, 2);
        assert!(
            second
                .contains("<TargetGroups><member><Name>c</Name></member></TargetGroups></Result>"),
            "{second}"
        );
        let (body, start) = request(
            p,
            "Action=DescribeTargetGroups&Marker=fault-proxy-2&LoadBalancerArn=x",
        );
        assert_eq!(
            (body.as_str(), start),
            ("Action=DescribeTargetGroups&LoadBalancerArn=x", 2)
        );
    }

    #[test]
    fn an_empty_list_and_an_error_stay_as_they_are() {
        let p = paging_of("DescribeLaunchTemplates").unwrap();
        let empty = "<R><launchTemplates/></R>";
        assert_eq!(
            answer(p, empty, 0, 2),
            "<R><launchTemplates></launchTemplates></R>"
        );
        let error = "<Response><Errors><Error><Code>X</Code></Error></Errors></Response>";
        assert_eq!(answer(p, error, 0, 2), error);
        assert_eq!(paging_of("DescribeImages"), None);
    }
}
