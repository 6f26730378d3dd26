//! A zone out of capacity, as AWS reports it (the emulator launches anywhere, at once):
//! a group's launches into one subnet fail with EC2's `InsufficientInstanceCapacity`, which
//! Auto Scaling records as a failed scaling activity and works around by launching in the
//! group's other zones, whose instances take a while to come up.
//!
//! The proxy drops the subnet from the group's `VPCZoneIdentifier` on its way to the
//! emulator (so every instance lands in another zone), answers the group's
//! `DescribeScalingActivities` itself (the emulator's list is always empty) with one failed
//! launch a second since the group was made, newest first, and reports the group's
//! instances `Pending` for `pending_for` after it was made.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_autoscaling::primitives::{DateTime, DateTimeFormat};

use super::form_field;

/// One group's launches failing in one zone for lack of capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct NoCapacity {
    /// The group (by name), e.g. `web-r2`.
    pub group: String,
    /// The subnet whose zone has no capacity.
    pub subnet_id: String,
    /// That subnet's zone, e.g. `us-east-1a`.
    pub zone: String,
    /// The group's other zones (AWS names them in its message).
    pub other_zones: Vec<String>,
    /// The type that has no capacity there.
    pub instance_type: String,
    /// How long the group's instances stay `Pending` after it is made (AWS's launches in
    /// the other zones after the failed tries).
    pub pending_for: Duration,
}

impl NoCapacity {
    /// AWS's status message of a launch that failed for lack of capacity.
    pub fn message(&self) -> String {
        let t = &self.instance_type;
        format!(
            "We currently do not have sufficient {t} capacity in the Availability Zone you requested ({}). Our system will be working on provisioning additional capacity. You can currently get {t} capacity by not specifying an Availability Zone in your request or choosing {}. Launching EC2 instance failed.",
            self.zone,
            self.other_zones.join(", ")
        )
    }
}

/// The fault that names the group of a `CreateAutoScalingGroup`, `DescribeScalingActivities`
/// or a group answered in `DescribeAutoScalingGroups`.
pub fn of_group<'a>(faults: &'a [NoCapacity], group: &str) -> Option<&'a NoCapacity> {
    faults.iter().find(|f| f.group == group)
}

/// The body of a `CreateAutoScalingGroup` with the subnet out of capacity left out (when the
/// group has another); None: nothing to change.
pub fn create_body(faults: &[NoCapacity], body: &str) -> Option<String> {
    let group = form_field(body, "AutoScalingGroupName")?;
    let fault = of_group(faults, &group)?;
    let subnets = form_field(body, "VPCZoneIdentifier")?;
    let kept: Vec<&str> = subnets
        .split(',')
        .map(str::trim)
        .filter(|s| *s != fault.subnet_id)
        .collect();
    if kept.is_empty() || kept.len() == subnets.split(',').count() {
        return None;
    }
    Some(
        body.split('&')
            .map(|kv| {
                if kv.starts_with("VPCZoneIdentifier=") {
                    format!("VPCZoneIdentifier={}", kept.join("%2C"))
                } else {
                    kv.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// AWS's answer to `DescribeScalingActivities` of the group, made `made` ago: one failed
/// launch a second (AWS's tries in the zone), at most `max` (the request's `MaxRecords`,
/// default 100), newest first.
pub fn activities(fault: &NoCapacity, made: Instant, now: Instant, body: &str) -> String {
    let max = form_field(body, "MaxRecords")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(100);
    let age = now.saturating_duration_since(made);
    let tries = (age.as_secs() + 1).min(max);
    let wall = SystemTime::now();
    let message = xml_escape(&fault.message());
    let details = xml_escape(&format!(
        "{{\"Subnet ID\":\"{}\",\"Availability Zone\":\"{}\"}}",
        fault.subnet_id, fault.zone
    ));
    let mut members = String::new();
    for i in 0..tries {
        // Newest first: the latest try `i` seconds before now.
        let at = wall - Duration::from_secs(i);
        let at = DateTime::from(at)
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_default();
        members.push_str(&format!(
            "<member><ActivityId>fault-proxy-{group}-{n}</ActivityId><AutoScalingGroupName>{group}</AutoScalingGroupName><Description>Launching a new EC2 instance.  Status Reason: {message}</Description><Cause>At {at} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 0 to 1.</Cause><StartTime>{at}</StartTime><EndTime>{at}</EndTime><StatusCode>Failed</StatusCode><StatusMessage>{message}</StatusMessage><Progress>100</Progress><Details>{details}</Details></member>",
            group = fault.group,
            n = tries - i,
        ));
    }
    format!(
        "<DescribeScalingActivitiesResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><DescribeScalingActivitiesResult><Activities>{members}</Activities></DescribeScalingActivitiesResult><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>"
    )
}

/// A `DescribeAutoScalingGroups` answer with the group's instances `Pending` while its
/// launches elsewhere are under way.
pub fn pending(fault: &NoCapacity, made: Instant, now: Instant, answer: &str) -> String {
    if now >= made + fault.pending_for {
        return answer.to_string();
    }
    let tag = format!(
        "<AutoScalingGroupName>{}</AutoScalingGroupName>",
        fault.group
    );
    let Some(start) = answer.find(&tag) else {
        return answer.to_string();
    };
    // The group's part of the answer: up to the next group's name.
    let rest = &answer[start + tag.len()..];
    let end = rest
        .find("<AutoScalingGroupName>")
        .map(|i| start + tag.len() + i)
        .unwrap_or(answer.len());
    let part = answer[start..end].replace(
        "<LifecycleState>InService</LifecycleState>",
        "<LifecycleState>Pending</LifecycleState>",
    );
    format!("{}{part}{}", &answer[..start], &answer[end..])
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> NoCapacity {
        NoCapacity {
            group: "web-r2".into(),
            subnet_id: "subnet-a".into(),
            zone: "us-east-1a".into(),
            other_zones: vec!["us-east-1b".into()],
            instance_type: "t3.micro".into(),
            pending_for: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_zone_out_of_capacity_is_left_out_of_the_group() {
        let body = "Action=CreateAutoScalingGroup&AutoScalingGroupName=web-r2&VPCZoneIdentifier=subnet-a%2Csubnet-b&MinSize=2";
        let out = create_body(&[fault()], body).unwrap();
        assert_eq!(form_field(&out, "VPCZoneIdentifier").unwrap(), "subnet-b");
        assert!(out.ends_with("&MinSize=2"), "{out}");
        // Another group, or no other subnet: as it was.
        assert_eq!(
            create_body(&[fault()], &body.replace("web-r2", "web-r3")),
            None
        );
        assert_eq!(
            create_body(
                &[fault()],
                "Action=CreateAutoScalingGroup&AutoScalingGroupName=web-r2&VPCZoneIdentifier=subnet-a"
            ),
            None
        );
    }

    #[test]
    fn one_failed_launch_a_second_newest_first() {
        let made = Instant::now();
        let answer = activities(&fault(), made, made + Duration::from_millis(3500), "");
        assert_eq!(answer.matches("<StatusCode>Failed</StatusCode>").count(), 4);
        assert!(answer.contains("fault-proxy-web-r2-4</ActivityId>"));
        assert!(
            answer.find("web-r2-4<").unwrap() < answer.find("web-r2-1<").unwrap(),
            "newest first"
        );
        assert!(answer.contains("<StatusMessage>We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a)."));
        assert!(answer.contains("&quot;Availability Zone&quot;:&quot;us-east-1a&quot;"));
        let capped = activities(
            &fault(),
            made,
            made + Duration::from_secs(60),
            "MaxRecords=20",
        );
        assert_eq!(capped.matches("<member>").count(), 20);
    }

    #[test]
    fn only_that_groups_instances_are_pending_and_only_for_a_while() {
        let answer = "<AutoScalingGroupName>web-r1</AutoScalingGroupName><Instances><member><LifecycleState>InService</LifecycleState></member></Instances><AutoScalingGroupName>web-r2</AutoScalingGroupName><Instances><member><LifecycleState>InService</LifecycleState></member></Instances>";
        let made = Instant::now();
        let out = pending(&fault(), made, made + Duration::from_secs(1), answer);
        assert_eq!(out.matches("Pending").count(), 1);
        assert!(out.find("Pending").unwrap() > out.find("web-r2").unwrap());
        assert_eq!(
            pending(&fault(), made, made + Duration::from_secs(6), answer),
            answer
        );
    }
}
