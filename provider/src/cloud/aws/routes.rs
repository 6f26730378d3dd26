//! ELB v2 routes: a listener's default action or one rule of it — read, written with the
//! actions in front kept as they are, put back exactly — and the health-check rules.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{deleted, err};
use super::pages::every_page;
use super::*;

/// The rule among `rules` whose header condition carries `token` (a health-check rule of
/// this attempt).
pub(super) fn rule_with_token(rules: &[elb::types::Rule], token: &str) -> Option<String> {
    rules
        .iter()
        .find(|r| {
            r.conditions().iter().any(|c| {
                c.http_header_config()
                    .is_some_and(|h| h.values().iter().any(|v| v == token))
            })
        })
        .and_then(|r| r.rule_arn())
        .map(String::from)
}

/// The final action in domain terms.
pub(super) fn domain_action(action: &elb::types::Action) -> ListenerAction {
    match action.r#type() {
        Some(elb::types::ActionTypeEnum::Forward) => {
            let tuples: Vec<(String, i64)> = action
                .forward_config()
                .map(|f| {
                    f.target_groups()
                        .iter()
                        .map(|t| {
                            (
                                t.target_group_arn().unwrap_or_default().to_string(),
                                i64::from(t.weight().unwrap_or(1)),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if tuples.is_empty() {
                ListenerAction::Forward(vec![(
                    action.target_group_arn().unwrap_or_default().to_string(),
                    100,
                )])
            } else {
                ListenerAction::Forward(tuples)
            }
        }
        Some(elb::types::ActionTypeEnum::FixedResponse) => ListenerAction::Fixed(
            action
                .fixed_response_config()
                .and_then(|f| f.status_code().map(String::from))
                .unwrap_or_default(),
        ),
        other => ListenerAction::Other(other.map(|t| t.as_str().to_string()).unwrap_or_default()),
    }
}

/// An action read from AWS, made fit to be written back: AWS never returns an OIDC client
/// secret, so the write says to keep the one it has.
pub(super) fn writable(action: &elb::types::Action) -> elb::types::Action {
    let mut a = action.clone();
    if let Some(oidc) = a.authenticate_oidc_config.as_mut() {
        if oidc.client_secret.is_none() {
            oidc.use_existing_client_secret = Some(true);
        }
    }
    a
}

/// A forward action's group stickiness in seconds, None when off.
pub(super) fn sticky_of(action: &elb::types::Action) -> Option<u64> {
    let c = action.forward_config()?.target_group_stickiness_config()?;
    if c.enabled() != Some(true) {
        return None;
    }
    Some(c.duration_seconds().unwrap_or(0).max(0) as u64)
}

pub(super) fn forward_action(weights: &[(String, i64)], sticky: Option<u64>) -> elb::types::Action {
    let tuples = weights
        .iter()
        .map(|(arn, w)| {
            elb::types::TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(*w as i32)
                .build()
        })
        .collect();
    elb::types::Action::builder()
        .r#type(elb::types::ActionTypeEnum::Forward)
        .forward_config(
            elb::types::ForwardActionConfig::builder()
                .set_target_groups(Some(tuples))
                .set_target_group_stickiness_config(sticky.map(|secs| {
                    elb::types::TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(secs as i32)
                        .build()
                }))
                .build(),
        )
        .build()
}

impl AwsCloud {
    /// The actions of a health-check rule forwarding to `target_group_arn`: the route's
    /// authentication goes in front too, so that a request that knows the header's value is
    /// still authenticated first — all of it that a new rule can carry: AWS never returns an
    /// OIDC client secret, and a rule being created must give one, so an
    /// `authenticate-oidc` action is left out (the rule is then guarded by its random header
    /// alone, as every health-check rule was).
    pub(super) async fn health_rule_actions(
        &self,
        route: &Route,
        target_group_arn: &str,
    ) -> CloudResult<Vec<elb::types::Action>> {
        let mut actions = self
            .with_front(
                route,
                elb::types::Action::builder()
                    .r#type(elb::types::ActionTypeEnum::Forward)
                    .target_group_arn(target_group_arn)
                    .build(),
            )
            .await?;
        actions.retain(|a| {
            a.authenticate_oidc_config
                .as_ref()
                .is_none_or(|c| c.client_secret.is_some())
        });
        if actions.len() == 1 {
            actions[0].order = None;
        }
        Ok(actions)
    }

    /// Every rule of a listener, every page of them (`NextMarker`).
    pub(super) async fn listener_rules(
        &self,
        listener_arn: &str,
    ) -> CloudResult<Vec<elb::types::Rule>> {
        every_page(|marker| async move {
            let out = self
                .elb
                .describe_rules()
                .listener_arn(listener_arn)
                .set_marker(marker)
                .send()
                .await
                .map_err(err(format!("reading rules of listener ({listener_arn})")))?;
            Ok((out.rules().to_vec(), out.next_marker().map(String::from)))
        })
        .await
    }

    /// A route's actions in order; None when the listener or rule does not exist.
    pub(super) async fn route_actions(
        &self,
        route: &Route,
    ) -> CloudResult<Option<Vec<elb::types::Action>>> {
        let mut actions = match &route.rule_arn {
            Some(rule) => match self.elb.describe_rules().rule_arns(rule).send().await {
                Ok(o) => match o.rules().first() {
                    Some(r) => r.actions().to_vec(),
                    None => return Ok(None),
                },
                Err(e) if e.code() == Some("RuleNotFound") => return Ok(None),
                Err(e) => return Err(err(format!("reading {}", route.what()))(e)),
            },
            None => match self
                .elb
                .describe_listeners()
                .listener_arns(&route.listener_arn)
                .send()
                .await
            {
                Ok(o) => match o.listeners().first() {
                    Some(l) => l.default_actions().to_vec(),
                    None => return Ok(None),
                },
                Err(e) if e.code() == Some("ListenerNotFound") => return Ok(None),
                Err(e) => return Err(err(format!("reading {}", route.what()))(e)),
            },
        };
        actions.sort_by_key(|a| a.order().unwrap_or(0));
        let front = actions[..actions.len().saturating_sub(1)].to_vec();
        self.fronts
            .lock()
            .unwrap()
            .insert(route.key().to_string(), front);
        Ok(Some(actions))
    }

    /// The actions in front of the route's final action, as last read (read now if never).
    pub(super) async fn front_actions(
        &self,
        route: &Route,
    ) -> CloudResult<Vec<elb::types::Action>> {
        let known = self.fronts.lock().unwrap().get(route.key()).cloned();
        match known {
            Some(f) => Ok(f),
            None => {
                self.route_actions(route).await?;
                Ok(self
                    .fronts
                    .lock()
                    .unwrap()
                    .get(route.key())
                    .cloned()
                    .unwrap_or_default())
            }
        }
    }

    /// The route's front actions followed by `last` (ordered after them when they are).
    pub(super) async fn with_front(
        &self,
        route: &Route,
        mut last: elb::types::Action,
    ) -> CloudResult<Vec<elb::types::Action>> {
        let mut actions: Vec<elb::types::Action> = self
            .front_actions(route)
            .await?
            .iter()
            .map(writable)
            .collect();
        if !actions.is_empty() {
            let order = actions.iter().filter_map(|a| a.order()).max().unwrap_or(0);
            last.order = Some(order + 1);
        }
        actions.push(last);
        Ok(actions)
    }

    /// Writes a route's whole action list; returns the actions AWS answers the change with
    /// (ordered), if it says.
    pub(super) async fn write_route(
        &self,
        route: &Route,
        actions: Vec<elb::types::Action>,
        what: String,
    ) -> CloudResult<Option<Vec<elb::types::Action>>> {
        let mut answered = match &route.rule_arn {
            Some(rule) => self
                .elb
                .modify_rule()
                .rule_arn(rule)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(err(what))?
                .rules()
                .first()
                .map(|r| r.actions().to_vec()),
            None => self
                .elb
                .modify_listener()
                .listener_arn(&route.listener_arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(err(what))?
                .listeners()
                .first()
                .map(|l| l.default_actions().to_vec()),
        };
        if let Some(a) = answered.as_mut() {
            a.sort_by_key(|a| a.order().unwrap_or(0));
        }
        Ok(answered.filter(|a| !a.is_empty()))
    }
}

/// The ARN of a listener's load balancer, from the listener's ARN (AWS's documented form).
/// A route's state from its actions as AWS has them.
fn route_state(actions: Vec<elb::types::Action>) -> RouteState {
    let Some((last, front)) = actions.split_last() else {
        return RouteState {
            front: Vec::new(),
            last: ListenerAction::Other("none".into()),
            sticky: None,
            snapshot: Snapshot {
                key: "[]".into(),
                raw: Arc::new(actions),
            },
        };
    };
    RouteState {
        front: front
            .iter()
            .map(|a| {
                a.r#type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default()
            })
            .collect(),
        last: domain_action(last),
        sticky: sticky_of(last),
        snapshot: Snapshot {
            key: format!("{actions:?}"),
            raw: Arc::new(actions.clone()),
        },
    }
}

fn load_balancer_of(listener_arn: &str) -> Option<String> {
    let (head, rest) = listener_arn.split_once(":listener/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    (parts.len() == 4).then(|| format!("{head}:loadbalancer/{}", parts[..3].join("/")))
}

#[async_trait]
impl Traffic for AwsCloud {
    async fn read(&self, route: &Route) -> CloudResult<Option<RouteState>> {
        Ok(self.route_actions(route).await?.map(route_state))
    }

    fn with_forward(
        &self,
        state: &RouteState,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> RouteState {
        let Some(actions) = state.snapshot.raw.downcast_ref::<Vec<elb::types::Action>>() else {
            return state.clone();
        };
        let mut actions = actions.clone();
        if let Some(last) = actions.last_mut() {
            let order = last.order;
            *last = forward_action(weights, sticky);
            last.order = order;
        }
        route_state(actions)
    }

    async fn forward(
        &self,
        route: &Route,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> CloudResult<Option<(ListenerAction, Option<u64>)>> {
        let actions = self
            .with_front(route, forward_action(weights, sticky))
            .await?;
        let answered = self
            .write_route(route, actions, format!("setting {} weights", route.what()))
            .await?;
        Ok(answered.and_then(|a| a.last().map(|l| (domain_action(l), sticky_of(l)))))
    }

    async fn fixed_response(&self, route: &Route, status: u16) -> CloudResult<()> {
        let action = elb::types::Action::builder()
            .r#type(elb::types::ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                elb::types::FixedResponseActionConfig::builder()
                    .status_code(status.to_string())
                    .content_type("text/plain")
                    .message_body("no release is serving")
                    .build(),
            )
            .build();
        let actions = self.with_front(route, action).await?;
        self.write_route(
            route,
            actions,
            format!("setting {} to a fixed {status}", route.what()),
        )
        .await
        .map(|_| ())
    }

    async fn put_back(&self, route: &Route, state: &RouteState) -> CloudResult<()> {
        let Some(actions) = state.snapshot.raw.downcast_ref::<Vec<elb::types::Action>>() else {
            return Err(CloudError::Transport {
                action: format!("putting {} back", route.what()),
                message: "the route was read by another adapter".into(),
            });
        };
        self.write_route(
            route,
            actions.iter().map(writable).collect(),
            format!("putting {} back as it was", route.what()),
        )
        .await
        .map(|_| ())
    }

    async fn rule_of_listener(&self, listener_arn: &str, rule_arn: &str) -> CloudResult<bool> {
        Ok(self
            .listener_rules(listener_arn)
            .await?
            .iter()
            .any(|r| r.rule_arn() == Some(rule_arn) && r.is_default() != Some(true)))
    }

    async fn health_rules(&self, listener_arn: &str) -> CloudResult<Vec<(String, String)>> {
        let rules = self.listener_rules(listener_arn).await?;
        let mut out = Vec::new();
        for r in &rules {
            for c in r.conditions() {
                if let Some(h) = c.http_header_config() {
                    if h.http_header_name() == Some(crate::naming::HEALTH_RULE_HEADER) {
                        for v in h.values() {
                            if let Some(arn) = r.rule_arn() {
                                out.push((arn.to_string(), v.clone()));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn attach_for_health_checks(
        &self,
        route: &Route,
        target_group_arn: &str,
        token: &str,
    ) -> CloudResult<String> {
        let listener_arn = &route.listener_arn;
        let actions = self.health_rule_actions(route, target_group_arn).await?;
        let what = || {
            format!("attaching target group ({target_group_arn}) to listener ({listener_arn}) for health checks")
        };
        let mut rules = self.listener_rules(listener_arn).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let used: Vec<i64> = rules
                .iter()
                .filter_map(|r| r.priority()?.parse().ok())
                .collect();
            // The highest free priority, so that the user's own rules always come first.
            let priority = (1..=50_000)
                .rev()
                .find(|p| !used.contains(p))
                .unwrap_or(50_000);
            let out = self
                .elb
                .create_rule()
                .listener_arn(listener_arn)
                .priority(priority as i32)
                .conditions(
                    elb::types::RuleCondition::builder()
                        .field("http-header")
                        .http_header_config(
                            elb::types::HttpHeaderConditionConfig::builder()
                                .http_header_name(crate::naming::HEALTH_RULE_HEADER)
                                .values(token)
                                .build(),
                        )
                        .build(),
                )
                .set_actions(Some(actions.clone()))
                .send()
                .await;
            match out {
                Ok(out) => {
                    return Ok(out
                        .rules()
                        .first()
                        .and_then(|r| r.rule_arn())
                        .unwrap_or_default()
                        .to_string())
                }
                // Either a retry of a create whose answer was lost (the rule with this token
                // is ours), or another release on this listener took the priority between
                // the read and the create: read again and take the next free one.
                Err(e) if e.code() == Some("PriorityInUse") => {
                    rules = self.listener_rules(listener_arn).await?;
                    if let Some(arn) = rule_with_token(&rules, token) {
                        return Ok(arn);
                    }
                    if attempt >= 5 {
                        return Err(err(what())(e));
                    }
                }
                Err(e) => return Err(err(what())(e)),
            }
        }
    }

    async fn target_groups_on_load_balancer(
        &self,
        listener_arn: &str,
    ) -> CloudResult<Option<usize>> {
        // A listener's ARN names its load balancer (`…:listener/app/<name>/<id>/<listener
        // id>` → `…:loadbalancer/app/<name>/<id>`): no call to find it.
        let lb = match load_balancer_of(listener_arn) {
            Some(lb) => lb,
            None => match self
                .elb
                .describe_listeners()
                .listener_arns(listener_arn)
                .send()
                .await
            {
                Ok(o) => match o.listeners().first().and_then(|l| l.load_balancer_arn()) {
                    Some(lb) => lb.to_string(),
                    None => return Ok(None),
                },
                Err(e) if e.code() == Some("ListenerNotFound") => return Ok(None),
                Err(e) => return Err(err(format!("reading listener ({listener_arn})"))(e)),
            },
        };
        let lb = &lb;
        let groups = every_page(|marker| async move {
            match self
                .elb
                .describe_target_groups()
                .load_balancer_arn(lb)
                .set_marker(marker)
                .send()
                .await
            {
                Ok(o) => Ok((
                    o.target_groups()
                        .iter()
                        .filter_map(|t| t.target_group_arn().map(String::from))
                        .collect::<Vec<_>>(),
                    o.next_marker().map(String::from),
                )),
                // The emulator's answer for a load balancer with none (AWS: an empty list).
                Err(e) if e.code() == Some("TargetGroupNotFound") => Ok((Vec::new(), None)),
                Err(e) if e.code() == Some("LoadBalancerNotFound") => Ok((Vec::new(), None)),
                Err(e) => Err(err(format!(
                    "reading target groups of load balancer ({lb})"
                ))(e)),
            }
        })
        .await?;
        Ok(Some(
            groups
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        ))
    }

    async fn delete_rule(&self, rule_arn: &str) -> CloudResult<()> {
        let out = self.elb.delete_rule().rule_arn(rule_arn).send().await;
        deleted(
            out,
            |c, _| c == "RuleNotFound",
            format!("deleting listener rule ({rule_arn})"),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_listener_arn_names_its_load_balancer() {
        assert_eq!(
            super::load_balancer_of("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2").as_deref(),
            Some("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop/50dc6c495c0c9188")
        );
        assert_eq!(
            super::load_balancer_of(
                "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/a/b/c/d"
            ),
            None
        );
    }
}
