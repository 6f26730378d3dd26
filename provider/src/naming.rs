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
}
