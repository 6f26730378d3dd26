//! Failed launches by cause. A scaling activity that failed for lack of capacity in one
//! zone (or for a type a zone does not offer, or a subnet out of addresses) is AWS's to
//! work around: it launches in another of the group's zones, or another of its types, and
//! tries the zone again later. Such failures never end a release by themselves; only the
//! health timeout does, and its message then says capacity was the cause. Every other
//! failure (an image that does not exist, a refused instance profile, a vCPU limit, a KMS
//! key the Auto Scaling role may not use) comes back on every try: a few of them abort
//! the release at once.

/// Why a launch failed, as far as the provider acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Not enough capacity where AWS tried (a zone, a type, a subnet's addresses): AWS
    /// tries elsewhere and again; the release waits until `health.timeout`.
    Capacity,
    /// Anything else: AWS's next try fails the same way.
    Lasting,
}

/// AWS's words for a failure that another zone, another type or a later try can cure, in
/// a scaling activity's status message (the EC2 error code or its text).
const CAPACITY_SIGNS: &[&str] = &[
    "InsufficientInstanceCapacity",
    "We currently do not have sufficient",
    "Insufficient capacity",
    "There is no Spot capacity",
    "is not supported in your requested Availability Zone",
    "InsufficientFreeAddressesInSubnet",
    "There are not enough free addresses in subnet",
];

/// The cause of one failed launch, from its status message.
pub fn cause(message: &str) -> Cause {
    if CAPACITY_SIGNS.iter().any(|s| message.contains(s)) {
        Cause::Capacity
    } else {
        Cause::Lasting
    }
}

/// A group's failed launches, split by cause; each list keeps AWS's order (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failed {
    /// Failures AWS works around by itself.
    pub capacity: Vec<String>,
    /// Failures that come back on every try.
    pub lasting: Vec<String>,
}

impl Failed {
    /// Sorts failed launches' messages by cause.
    pub fn sort(messages: &[String]) -> Self {
        let mut out = Self::default();
        for m in messages {
            match cause(m) {
                Cause::Capacity => out.capacity.push(m.clone()),
                Cause::Lasting => out.lasting.push(m.clone()),
            }
        }
        out
    }

    /// What capacity failures add to a wait's message, if any: how many and the newest.
    pub fn capacity_note(&self) -> Option<String> {
        let newest = self.capacity.first()?;
        Some(format!(
            "{} launch{} failed for lack of capacity (AWS keeps trying its other zones and types), the latest: {newest}",
            self.capacity.len(),
            if self.capacity.len() == 1 { "" } else { "es" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_as_aws_words_them() {
        for (message, expected) in [
            (
                "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get t3.micro capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c. Launching EC2 instance failed.",
                Cause::Capacity,
            ),
            ("InsufficientInstanceCapacity: Insufficient capacity.", Cause::Capacity),
            (
                "Your requested instance type (m7g.large) is not supported in your requested Availability Zone (us-east-1e). Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b. Launching EC2 instance failed.",
                Cause::Capacity,
            ),
            (
                "There are not enough free addresses in subnet 'subnet-0abc' to satisfy the requested number of instances. Launching EC2 instance failed.",
                Cause::Capacity,
            ),
            (
                "The image id '[ami-0000000b]' does not exist. Launching EC2 instance failed.",
                Cause::Lasting,
            ),
            (
                "Invalid IAM Instance Profile name. Launching EC2 instance failed.",
                Cause::Lasting,
            ),
            (
                "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to. Launching EC2 instance failed.",
                Cause::Lasting,
            ),
            (
                "Client.InternalError: Client error on launch. Launching EC2 instance failed.",
                Cause::Lasting,
            ),
            ("", Cause::Lasting),
        ] {
            assert_eq!(cause(message), expected, "{message}");
        }
    }

    #[test]
    fn sorting_keeps_order_and_notes_the_newest() {
        let failed = Failed::sort(&[
            "We currently do not have sufficient t3.micro capacity (b)".into(),
            "The image id 'ami-1' does not exist.".into(),
            "We currently do not have sufficient t3.micro capacity (a)".into(),
        ]);
        assert_eq!(failed.lasting, vec!["The image id 'ami-1' does not exist."]);
        assert_eq!(failed.capacity.len(), 2);
        let note = failed.capacity_note().unwrap();
        assert!(
            note.starts_with("2 launches failed for lack of capacity"),
            "{note}"
        );
        assert!(note.ends_with("capacity (b)"), "{note}");
        assert_eq!(Failed::default().capacity_note(), None);
    }
}
