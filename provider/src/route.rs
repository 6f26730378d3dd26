//! The route a release owns, a domain type: the spec and the ledger name it, the cloud
//! writes it. It lives below all three, so that neither the spec nor the ledger depends on
//! the cloud's traits.

/// The route a release owns: a listener's default action, or one rule of that listener
/// (`load_balancer.rule_arn`), whose conditions and priority stay the user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The listener.
    pub listener_arn: String,
    /// The rule of that listener, None for the default action.
    pub rule_arn: Option<String>,
}

impl Route {
    /// The default action of a listener.
    pub fn listener(listener_arn: &str) -> Self {
        Self {
            listener_arn: listener_arn.into(),
            rule_arn: None,
        }
    }

    /// The ARN of what the route writes: the rule's, else the listener's.
    pub fn key(&self) -> &str {
        self.rule_arn.as_deref().unwrap_or(&self.listener_arn)
    }

    /// How messages name it: `listener (ARN)` or `listener rule (ARN)`.
    pub fn what(&self) -> String {
        match &self.rule_arn {
            Some(rule) => format!("listener rule ({rule})"),
            None => format!("listener ({})", self.listener_arn),
        }
    }
}
