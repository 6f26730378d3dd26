//! Names of the objects a release owns, below the engine and the cloud adapters: what they
//! are called and how the provider recognises its own.

/// Tag: the release name that owns an object.
pub const TAG_RELEASE_NAME: &str = "immutable:release-name";
/// Tag: the release number of a fleet.
pub const TAG_RELEASE: &str = "immutable:release";
/// Tag: the image a fleet runs.
pub const TAG_IMAGE: &str = "immutable:image-id";
/// Tag: how far the fleet's release got.
pub const TAG_PHASE: &str = "immutable:phase";
/// Tag: the fleet-shaping fingerprint.
pub const TAG_FINGERPRINT: &str = "immutable:fingerprint";

/// The fleet name of a release number: `<name>-r<N>`.
pub fn fleet_name(release_name: &str, release: u64) -> String {
    format!("{release_name}-r{release}")
}

/// The name in a target group's ARN (`…:targetgroup/<name>/<id>`); the ARN itself when it
/// has none.
pub fn target_group_name(arn: &str) -> &str {
    arn.split_once(":targetgroup/")
        .and_then(|(_, rest)| rest.split('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(arn)
}

/// The header of the listener rule that makes the load balancer health-check a new fleet
/// before any request is routed to it; its value is the fleet's token.
pub const HEALTH_RULE_HEADER: &str = "X-Immutable-Health-Attach";

/// A new health-check token for fleet `fleet_name`: `<fleet>-<hex>`, unique per attempt.
pub fn health_token(fleet_name: &str, unique: u128) -> String {
    format!("{fleet_name}-{unique:x}")
}

/// Whether `token` is a health-check token of fleet `fleet_name` (`web-r1` owns
/// `web-r1-1a2b`, not `web-r10-1a2b`).
pub fn is_health_token_of_fleet(token: &str, fleet_name: &str) -> bool {
    token
        .strip_prefix(fleet_name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `token` is a health-check token of any fleet `<release>-r<N>` of release
/// `release` (`web` owns `web-r3-1a2b`, not the tokens of a release named `web-r`).
pub fn is_health_token_of_release(token: &str, release: &str) -> bool {
    let Some(rest) = token
        .strip_prefix(release)
        .and_then(|r| r.strip_prefix("-r"))
    else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && is_health_token_of_fleet(rest, &rest[..digits])
}

/// The name of a fleet's scaling policy on `metric`: `<fleet>-<metric>` (AWS names a policy
/// within its group; the name carries the fleet so that it is unique in the region too).
pub fn scaling_policy_name(fleet_name: &str, metric: &str) -> String {
    format!("{fleet_name}-{metric}")
}

/// The resource label of an `ALBRequestCountPerTarget` policy: the final portion of the load
/// balancer's ARN and of the target group's, `app/<lb>/<id>/targetgroup/<tg>/<id>`, the load
/// balancer's read from the ARN of one of its listeners. None when either ARN is not one.
pub fn request_count_label(listener_arn: &str, target_group_arn: &str) -> Option<String> {
    let lb = listener_arn.split_once(":listener/")?.1;
    let parts: Vec<&str> = lb.split('/').collect();
    let [kind @ "app", name, id, _listener] = parts[..] else {
        return None;
    };
    let tg = target_group_arn.split_once(":targetgroup/")?.1;
    let (tg_name, tg_id) = tg.split_once('/')?;
    if [name, id, tg_name, tg_id].iter().any(|p| p.is_empty()) || tg_id.contains('/') {
        return None;
    }
    Some(format!("{kind}/{name}/{id}/targetgroup/{tg_name}/{tg_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_tokens() {
        let t = health_token("web-r1", 0x1a2b);
        assert_eq!(t, "web-r1-1a2b");
        for (token, fleet, owned) in [
            ("web-r1-1a2b", "web-r1", true),
            ("web-r10-1a2b", "web-r1", false),
            ("web-r1-", "web-r1", false),
            ("web-r1-xyz", "web-r1", false),
            ("api-r1-1a2b", "web-r1", false),
        ] {
            assert_eq!(
                is_health_token_of_fleet(token, fleet),
                owned,
                "{token} / {fleet}"
            );
        }
        for (token, release, owned) in [
            ("web-r3-1a2b", "web", true),
            ("web-r12-ff", "web", true),
            ("web-r-r1-ff", "web", false),
            ("web-r-r1-ff", "web-r", true),
            ("web-rx-ff", "web", false),
            ("web-r3", "web", false),
            ("webb-r3-ff", "web", false),
        ] {
            assert_eq!(
                is_health_token_of_release(token, release),
                owned,
                "{token} / {release}"
            );
        }
    }

    #[test]
    fn request_count_labels() {
        let listener =
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/my-alb/778d41231b141a0f/f2f7dc8efc522ab2";
        let tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-r2/943f017f100becff";
        for (listener, tg, want) in [
            (
                listener,
                tg,
                Some("app/my-alb/778d41231b141a0f/targetgroup/web-r2/943f017f100becff"),
            ),
            // A network load balancer's listener: no request counts.
            (
                "arn:aws:elasticloadbalancing:us-east-1:1:listener/net/nlb/1/2",
                tg,
                None,
            ),
            ("not-an-arn", tg, None),
            (
                listener,
                "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1",
                None,
            ),
            (
                listener,
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-r2",
                None,
            ),
        ] {
            assert_eq!(
                request_count_label(listener, tg).as_deref(),
                want,
                "{listener} {tg}"
            );
        }
        assert_eq!(
            scaling_policy_name("web-r2", "ALBRequestCountPerTarget"),
            "web-r2-ALBRequestCountPerTarget"
        );
    }
}
