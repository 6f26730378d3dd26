//! The schemas Terraform sees, with a description on every attribute (the docs and the
//! language server show them).

use std::collections::HashMap;

use tf_provider::schema::{
    Attribute, AttributeConstraint as C, AttributeType as T, Block, Description, NestedBlock,
    Schema,
};

fn attr(t: T, c: C, description: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::markdown(description),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

fn block(
    description: &str,
    attributes: Vec<(&str, Attribute)>,
    blocks: Vec<(&str, NestedBlock)>,
) -> Block {
    Block {
        version: 0,
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        blocks: blocks
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        description: Description::markdown(description),
        deprecated: false,
    }
}

fn str_set() -> T {
    T::Set(Box::new(T::String))
}

fn str_map() -> T {
    T::Map(Box::new(T::String))
}

/// The element type of `history`.
pub fn history_type() -> T {
    T::List(Box::new(T::Object(HashMap::from([
        ("release".to_string(), T::Number),
        ("image_id".to_string(), T::String),
        ("fleet_name".to_string(), T::String),
        ("status".to_string(), T::String),
        ("started_at".to_string(), T::String),
        ("finished_at".to_string(), T::String),
        ("reason".to_string(), T::String),
    ]))))
}

/// The type of `holding`.
pub fn holding_type() -> T {
    T::Object(HashMap::from([
        ("fleet_name".to_string(), T::String),
        ("image_id".to_string(), T::String),
        ("weight".to_string(), T::Number),
        ("since".to_string(), T::String),
    ]))
}

/// The read-only attributes shared by the resource and the data source.
pub fn read_only_attributes() -> Vec<(&'static str, Attribute)> {
    vec![
        ("release", attr(T::Number, C::Computed, "Number of the release now serving: 1 for the first, +1 for each release or rollback.")),
        ("fleet_name", attr(T::String, C::Computed, "Name of the Auto Scaling group serving traffic (`<name>-r<release>`).")),
        ("target_group_arn", attr(T::String, C::Computed, "ARN of the serving fleet's target group.")),
        ("launch_template_id", attr(T::String, C::Computed, "ID of the serving fleet's launch template.")),
        ("previous_image_id", attr(T::String, C::Computed, "Image of the newest retained fleet, null if none. `terraform apply -var image_id=$(terraform output -raw previous_image_id)` is the one-line rollback.")),
        ("traffic", attr(T::Map(Box::new(T::Number)), C::Computed, "Listener weights as read from AWS: fleet name → percent (retained fleets at 0).")),
        ("history", attr(history_type(), C::Computed, "Past releases, newest first: `release`, `image_id`, `fleet_name`, `status` (`active`, `retained`, `retired`, `aborted`, `rolled_back`), `started_at`, `finished_at` (RFC 3339) and `reason` (why it aborted, was rolled back or retired); `holding` for a release held part-way.")),
        ("holding", attr(holding_type(), C::Computed, "The release held part-way by `hold_at`, null when none is: `fleet_name`, `image_id`, `weight` (the percent of traffic it holds; 0: healthy, no traffic) and `since` (RFC 3339). `release`, `fleet_name` and `previous_image_id` go on describing the serving fleet.")),
    ]
}

/// The schema of `immutable_release`.
pub fn release_schema() -> Schema {
    let oc = C::OptionalComputed;
    let health_check = block(
        "Health check of each fleet's target group.",
        vec![
            ("path", attr(T::String, oc.clone(), "Path probed. Defaults to `\"/\"`.")),
            ("port", attr(T::String, oc.clone(), "`\"traffic-port\"` or a port number. Defaults to `\"traffic-port\"`.")),
            ("protocol", attr(T::String, oc.clone(), "`\"HTTP\"` or `\"HTTPS\"`. Defaults to `\"HTTP\"`.")),
            ("interval", attr(T::Number, oc.clone(), "Seconds between probes, 5–300. Defaults to 30.")),
            ("timeout", attr(T::Number, oc.clone(), "Seconds before a probe fails, 2–120 and less than `interval`. Defaults to 5.")),
            ("healthy_threshold", attr(T::Number, oc.clone(), "Consecutive successes before a target is healthy, 2–10. Defaults to 3.")),
            ("unhealthy_threshold", attr(T::Number, oc.clone(), "Consecutive failures before a target is unhealthy, 2–10. Defaults to 2.")),
            ("matcher", attr(T::String, oc.clone(), "HTTP codes that count as success, e.g. `\"200\"` or `\"200-299\"`. Defaults to `\"200\"`.")),
        ],
        vec![],
    );
    let stickiness = block(
        "Group stickiness on the forward action the release owns (`TargetGroupStickinessConfig`): a client stays on the fleet that first served it for `duration`, whatever the weights. Carried through every weight change, abort, rollback and repair and read back with the weights; switched off by hand it is drift, put back. A change is a settings update of the route, not a release.",
        vec![("duration", attr(T::String, C::Required, "How long a client stays on its fleet, a duration of whole seconds from `\"1s\"` to `\"168h\"` (7 days). `rollback_window` must be longer: a fleet leaving traffic keeps serving its sticky clients until their cookie ends."))],
        vec![],
    );
    let load_balancer = block(
        "The Application Load Balancer listener that routes traffic to the fleets. Exactly one.",
        vec![
            ("listener_arn", attr(T::String, C::Required, "ARN of the ALB listener whose default action the release owns (put `lifecycle { ignore_changes = [default_action] }` on the listener's own resource), or whose rule `rule_arn` it owns. Actions in front of the final one (`authenticate-oidc`, `authenticate-cognito`) are kept as they are. Changing it forces a new resource.")),
            ("rule_arn", attr(T::String, C::Optional, "ARN of a rule of that listener: the release owns the rule's final action instead of the listener's default action (put `lifecycle { ignore_changes = [action] }` on the rule's own resource), so that many releases share one listener, each behind its own host, path or header rule. Its conditions and priority stay yours. Changing it forces a new resource.")),
            ("vpc_id", attr(T::String, C::Required, "VPC of the target groups. Changing it forces a new resource.")),
            ("port", attr(T::Number, oc.clone(), "Port the instances serve on (target group port). Defaults to 80.")),
            ("protocol", attr(T::String, oc.clone(), "Target group protocol, `\"HTTP\"` or `\"HTTPS\"`. Defaults to `\"HTTP\"`.")),
            ("deregistration_delay", attr(T::Number, oc.clone(), "Seconds a deregistered target drains, 0–3600. Defaults to 30.")),
        ],
        vec![
            ("health_check", NestedBlock::Optional(health_check)),
            ("stickiness", NestedBlock::Optional(stickiness)),
        ],
    );
    let health = block(
        "The health gate a new fleet must pass before any traffic moves.",
        vec![
            ("min_healthy_percentage", attr(T::Number, oc.clone(), "Share of desired capacity, 1–100, that must be InService and healthy behind the load balancer before traffic moves. Defaults to 100.")),
            ("grace_period", attr(T::String, oc.clone(), "Auto Scaling group health-check grace period, a duration. Defaults to `\"30s\"`.")),
            ("timeout", attr(T::String, oc.clone(), "Longest wait for the new fleet to become healthy, a duration; then the release aborts. Defaults to `\"10m\"`.")),
        ],
        vec![],
    );
    let canary_step = block(
        "One canary step (with `strategy = \"canary\"`, required there and refused otherwise): move `weight` percent of traffic to the new fleet, then watch `alarm_names` and health for `pause`.",
        vec![
            ("weight", attr(T::Number, C::Required, "Percent of traffic on the new fleet, 1–99, strictly increasing from step to step.")),
            ("pause", attr(T::String, oc.clone(), "How long to hold this weight while watching, a duration ≥ 0. Defaults to `\"0s\"`.")),
        ],
        vec![],
    );
    let error_rate = block(
        "The new fleet's 5xx share: `HTTPCode_Target_5XX_Count` ÷ `RequestCount` of its own target group (`AWS/ApplicationELB`), against the serving fleet's over the same window.",
        vec![
            ("max", attr(T::Number, C::Optional, "Highest rate allowed, percent (0–100).")),
            ("max_increase", attr(T::Number, C::Optional, "Highest rise over the serving fleet's rate allowed, percentage points (≥ 0).")),
            ("min_requests", attr(T::Number, C::Optional, "Fewer requests than this in the window: the judgement is inconclusive. Defaults to 100.")),
        ],
        vec![],
    );
    let latency = block(
        "The new fleet's `TargetResponseTime`, against the serving fleet's over the same window.",
        vec![
            ("statistic", attr(T::String, C::Optional, "`\"Average\"`, `\"p50\"`, `\"p90\"`, `\"p95\"` or `\"p99\"`. Defaults to `\"p99\"`.")),
            ("max", attr(T::String, C::Optional, "Highest allowed, a duration (`\"800ms\"`).")),
            ("max_increase", attr(T::String, C::Optional, "Highest rise over the serving fleet's allowed, a duration.")),
        ],
        vec![],
    );
    let metric = block(
        "A threshold on any CloudWatch metric of the new fleet (0–10 blocks).",
        vec![
            ("name", attr(T::String, C::Required, "How messages name the check.")),
            ("namespace", attr(T::String, C::Required, "CloudWatch namespace, e.g. `\"Shop\"`.")),
            ("metric_name", attr(T::String, C::Required, "Metric name.")),
            ("dimensions", attr(str_map(), C::Optional, "Dimensions; `{fleet}`, `{target_group}` and `{load_balancer}` in a value are replaced by the new fleet's Auto Scaling group name and the ALB dimension values of its target group and load balancer.")),
            ("statistic", attr(T::String, C::Required, "`\"Sum\"`, `\"Average\"`, `\"Minimum\"`, `\"Maximum\"`, `\"SampleCount\"` or a percentile (`\"p99\"`).")),
            ("max", attr(T::Number, C::Optional, "Highest allowed.")),
            ("min", attr(T::Number, C::Optional, "Lowest allowed.")),
        ],
        vec![],
    );
    let notification = block(
        "One JSON message per event of every apply to an SNS topic (fields `release_name`, `release`, `event`, `fleet_name`, `image_id`, `previous_fleet_name`, `traffic`, `reason`, `time`), with a one-line `Subject`. Sent beside the release, in order, without holding it up; a message that cannot be sent is a warning, never a failed release. Not fleet-shaping.",
        vec![
            ("sns_topic_arn", attr(T::String, C::Required, "The topic, `arn:aws:sns:<region>:<account>:<name>`; the provider's credentials need `sns:Publish` on it.")),
            ("events", attr(str_set(), C::Optional, "The events sent, of `started`, `healthy`, `traffic` (each weight reached), `held`, `committed`, `aborted`, `rolled_back`, `retired`. Defaults to all.")),
        ],
        vec![],
    );
    let analysis = block(
        "Judges the new fleet on its own metrics during every canary pause and the bake, every `interval`, over the window from the start of the current step (whole minutes, the current one included), against the serving fleet where `max_increase` asks for it. More than `failure_limit` failed judgements abort the release as an alarm does; a step that ends with only inconclusive judgements goes on with a warning. Not fleet-shaping.",
        vec![
            ("interval", attr(T::String, C::Optional, "Time between two judgements, a duration ≥ 1s. Defaults to `\"1m\"`.")),
            ("failure_limit", attr(T::Number, C::Optional, "Failed judgements tolerated in a release; one more aborts it. Defaults to 0.")),
        ],
        vec![
            ("error_rate", NestedBlock::Optional(error_rate)),
            ("latency", NestedBlock::Optional(latency)),
            ("metric", NestedBlock::List(metric)),
        ],
    );
    let launch_template = block(
        "A launch template of yours that every fleet's own template starts from (network interfaces, placement, tags, profile, key, user data, volumes, security groups, ...); the release's own arguments win over it, and the image, instance type and metadata options are always the release's. Fleet-shaping: a new version of it is a release.",
        vec![
            ("id", attr(T::String, C::Required, "Its ID (`lt-…`); must exist, checked at plan.")),
            ("version", attr(T::String, oc.clone(), "`\"$Latest\"`, `\"$Default\"` or a version number; resolved to a number at plan, never used as `$Latest` afterwards. Defaults to `\"$Default\"`.")),
            ("resolved_version", attr(T::Number, C::Computed, "The number `version` resolved to at plan: part of what shapes a fleet, so a new version of the template shows here and plans a release.")),
        ],
        vec![],
    );
    let target_tracking = block(
        "A target-tracking scaling policy (0–5 blocks, each metric once) that the serving fleet carries: put on each new fleet before it takes traffic, taken off a fleet when it is retained (it holds its capacity until its rollback window ends), put back on rollback. Changing them is a settings update of the serving fleet, not a release.",
        vec![
            ("predefined_metric", attr(T::String, C::Required, "`\"ALBRequestCountPerTarget\"` (requests per instance, bound to the fleet's own target group behind the listener's load balancer), `\"ASGAverageCPUUtilization\"` (a percentage), `\"ASGAverageNetworkIn\"` or `\"ASGAverageNetworkOut\"` (bytes).")),
            ("target_value", attr(T::Number, C::Required, "The value the metric is held at, greater than 0 (at most 100 for CPU).")),
            ("disable_scale_in", attr(T::Bool, oc.clone(), "The policy only scales out. Defaults to false.")),
        ],
        vec![],
    );
    let timeouts = block(
        "Time limits of the operations, as durations.",
        vec![
            (
                "create",
                attr(
                    T::String,
                    C::Optional,
                    "Limit of the first release. Defaults to `\"30m\"`.",
                ),
            ),
            (
                "update",
                attr(
                    T::String,
                    C::Optional,
                    "Limit of a release, rollback or scaling. Defaults to `\"45m\"`.",
                ),
            ),
            (
                "delete",
                attr(
                    T::String,
                    C::Optional,
                    "Limit of a destroy. Defaults to `\"20m\"`.",
                ),
            ),
        ],
        vec![],
    );
    let metadata_options = block(
        "The instance metadata service of every instance. Unset, or any attribute unset: IMDSv2 required (session tokens; v1's plain GETs, the SSRF hole, are refused) with a hop limit of 2. Fleet-shaping: a change is a release.",
        vec![
            ("http_tokens", attr(T::String, C::Optional, "`\"required\"` (IMDSv2 only) or `\"optional\"` (v1 answered too). Defaults to `\"required\"`.")),
            ("http_put_response_hop_limit", attr(T::Number, C::Optional, "Network hops a metadata response may take, 1–64. Defaults to 2 (containers on the instance reach it).")),
            ("http_endpoint", attr(T::String, C::Optional, "`\"enabled\"` or `\"disabled\"`. Defaults to `\"enabled\"`.")),
            ("instance_metadata_tags", attr(T::String, C::Optional, "Instance tags in the metadata: `\"enabled\"` or `\"disabled\"`. Defaults to `\"disabled\"`.")),
        ],
        vec![],
    );
    let block_device = block(
        "An EBS volume of every instance (0 or more; none: the image's own mappings). The image's root device name (e.g. `/dev/xvda`) sizes or encrypts its root volume. Fleet-shaping: a change is a release.",
        vec![
            ("device_name", attr(T::String, C::Required, "Device name, e.g. `\"/dev/xvda\"`; each once.")),
            ("volume_size", attr(T::Number, C::Optional, "Size in GiB: 1–16384 (`gp3`, `gp2`), 4–16384 (`io1`, `io2`), 125–16384 (`st1`, `sc1`), 1–1024 (`standard`). Unset: the snapshot's.")),
            ("volume_type", attr(T::String, C::Optional, "`\"gp3\"`, `\"gp2\"`, `\"io1\"`, `\"io2\"`, `\"st1\"`, `\"sc1\"` or `\"standard\"`. Defaults to `\"gp3\"`.")),
            ("iops", attr(T::Number, C::Optional, "Provisioned IOPS: `gp3` 3000–16000, `io1` 100–64000, `io2` 100–256000 (required for `io1`/`io2`); refused for other types.")),
            ("throughput", attr(T::Number, C::Optional, "MiB/s, `gp3` only: 125–1000.")),
            ("encrypted", attr(T::Bool, C::Optional, "Encrypted at rest. Defaults to true.")),
            ("kms_key_id", attr(T::String, C::Optional, "KMS key (ID or ARN) of the encryption; needs `encrypted = true`. Unset: the account's default EBS key.")),
            ("delete_on_termination", attr(T::Bool, C::Optional, "Deleted with the instance. Defaults to true.")),
        ],
        vec![],
    );
    let mut attributes = vec![
        ("id", attr(T::String, C::Computed, "The release name.")),
        ("name", attr(T::String, C::Required, "Name of the service: 1–24 characters, `^[a-z][a-z0-9-]*$`; prefix of every AWS object the release owns. Changing it forces a new resource.")),
        ("image_id", attr(T::String, C::Required, "Machine image of the fleet (`ami-` + 8 or 17 hex digits); must exist and be `available`. Change it to release; set it back to a retained fleet's image to roll back.")),
        ("instance_type", attr(T::String, C::Required, "EC2 instance type, e.g. `\"t3.micro\"`.")),
        ("fallback_instance_types", attr(T::List(Box::new(T::String)), C::Optional, "Types AWS may launch, in this order, when `instance_type` has no capacity in a zone: the group gets a mixed instances policy over the fleet's own template (`instance_type` first, on-demand, `prioritized`). 0–9 types, none repeated. Fleet-shaping: a change is a release.")),
        ("subnet_ids", attr(str_set(), C::Required, "Subnets the fleet launches into; at least one.")),
        ("security_group_ids", attr(str_set(), oc.clone(), "Security groups of the instances. Unset, AWS attaches the VPC's default security group, which usually does not admit the load balancer: name one that admits it on `port`.")),
        ("iam_instance_profile", attr(T::String, C::Optional, "Instance profile, by name or ARN.")),
        ("instance_tags", attr(str_map(), oc.clone(), "Tags on every instance.")),
        ("key_name", attr(T::String, C::Optional, "EC2 key pair of the instances. Fleet-shaping: a change is a release.")),
        ("monitoring", attr(T::Bool, C::Optional, "Detailed (1-minute) CloudWatch monitoring of the instances. Defaults to false. Fleet-shaping: a change is a release.")),
        ("min_size", attr(T::Number, oc.clone(), "Minimum size of the fleet, 0 or more; `min_size` ≤ `desired_capacity` ≤ `max_size`. Defaults to 1.")),
        ("max_size", attr(T::Number, oc.clone(), "Maximum size of the fleet. Defaults to max(min_size, desired_capacity).")),
        ("desired_capacity", attr(T::Number, oc.clone(), "Desired size, at least 1 (a new fleet passes its health gate with instances serving). Unset: the first release uses `min_size` (or, adopting a running service, the capacity of the groups behind its target groups) and later releases carry over the live fleet's desired capacity, so an autoscaled fleet never shrinks on release. A change to capacity alone scales the serving fleet in place.")),
        ("strategy", attr(T::String, oc.clone(), "`\"blue_green\"`: all traffic at once after the health gate; `\"canary\"`: walk the `canary_step` blocks, then 100 %. Defaults to `\"blue_green\"`.")),
        ("alarm_names", attr(str_set(), oc.clone(), "CloudWatch alarms watched during every canary pause and the bake; any in `ALARM` aborts the release.")),
        ("hold_at", attr(T::Number, oc.clone(), "Stop the release at this weight until a later apply raises or removes it: `0` (launched and healthy, no traffic), or with `canary` one of the `canary_step` weights. The apply ends successfully with the split held (`holding`); nothing is committed or retired. Raising or removing it promotes the held release (its health, alarms and analysis checked, then the walk goes on from the held weight); setting the fleet arguments back abandons it. Not fleet-shaping.")),
        ("bake_time", attr(T::String, oc.clone(), "After 100 % of traffic, keep watching alarms and health this long before the release counts as done. Defaults to `\"0s\"`.")),
        ("retain_fleets", attr(T::Number, oc.clone(), "Previous fleets, 0–3, kept out of traffic for instant rollback. Defaults to 1.")),
        ("rollback_window", attr(T::String, oc.clone(), "How long retained fleets keep full capacity (a scheduled action scales them to zero afterwards), a duration of at least `\"1m\"`. Defaults to `\"1h\"`.")),
        ("history_limit", attr(T::Number, oc.clone(), "Past releases, 1–100, kept in `history`. Defaults to 10.")),
        ("tags", attr(str_map(), oc.clone(), "Tags on every AWS object the release owns, over the provider's `default_tags`. Keys starting with `immutable:` are reserved.")),
    ];
    let mut user_data = attr(
        T::String,
        C::Optional,
        "Plain-text user data, at most 16 KB counted as AWS counts it: the plain text, before the base64 encoding the provider applies. Sensitive: never logged or shown.",
    );
    user_data.sensitive = true;
    attributes.push(("user_data", user_data));
    attributes.extend(read_only_attributes());
    attributes.push((
        "planned_steps",
        attr(T::List(Box::new(T::String)), C::Computed, "Known at plan: the steps the apply will take, in order, in words (launch, health gate with its figure and timeout, each traffic weight, each watch with the alarms watched, bake, which fleets are retained or deleted; or the rollback, scale or settings update). Kept as planned in the state after the apply."),
    ));
    attributes.push((
        "planned_duration",
        attr(T::String, C::Computed, "Known at plan: the least time those steps take (health-check thresholds × interval, pauses, bake, drains), a duration."),
    ));
    Schema {
        version: 0,
        block: block(
            "An immutable release: a fleet (launch template, Auto Scaling group, target group) replaced, never modified, on every change of image or fleet shape, with a health gate, blue/green or canary traffic through the listener, abort on failure, and retained fleets for instant rollback.",
            attributes,
            vec![
                ("load_balancer", NestedBlock::Single(load_balancer)),
                ("health", NestedBlock::Optional(health)),
                ("metadata_options", NestedBlock::Optional(metadata_options)),
                ("launch_template", NestedBlock::Optional(launch_template)),
                ("block_device", NestedBlock::List(block_device)),
                ("canary_step", NestedBlock::List(canary_step)),
                ("target_tracking", NestedBlock::List(target_tracking)),
                ("analysis", NestedBlock::Optional(analysis)),
                ("notification", NestedBlock::Optional(notification)),
                ("timeouts", NestedBlock::Optional(timeouts)),
            ],
        ),
    }
}

/// The schema of the `immutable_release` data source.
pub fn release_data_source_schema() -> Schema {
    let mut attributes = vec![
        ("id", attr(T::String, C::Computed, "The release name.")),
        (
            "name",
            attr(T::String, C::Required, "Name of the release to read."),
        ),
        (
            "image_id",
            attr(T::String, C::Computed, "Image of the serving fleet."),
        ),
    ];
    attributes.extend(read_only_attributes());
    Schema {
        version: 0,
        block: block(
            "Reads a release by name from AWS: the serving image and fleet, traffic and history.",
            attributes,
            vec![],
        ),
    }
}

/// The provider block's schema.
pub fn provider_schema() -> Schema {
    let oc = C::Optional;
    let endpoints = block(
        "Per-service endpoints; each wins over `endpoint_url`.",
        vec![
            ("ec2", attr(T::String, oc.clone(), "EC2 endpoint.")),
            (
                "autoscaling",
                attr(T::String, oc.clone(), "Auto Scaling endpoint."),
            ),
            (
                "elbv2",
                attr(T::String, oc.clone(), "Elastic Load Balancing v2 endpoint."),
            ),
            (
                "cloudwatch",
                attr(T::String, oc.clone(), "CloudWatch endpoint."),
            ),
            (
                "sts",
                attr(T::String, oc.clone(), "STS endpoint (`assume_role`, the account guards, web identity through `AWS_ENDPOINT_URL_STS`)."),
            ),
        ],
        vec![],
    );
    let assume_role = block(
        "A role assumed on top of whichever credentials the standard chain found (environment, profile, SSO, web identity, `credential_process`, instance role), as hashicorp/aws's block of that name: every call is signed with the role's credentials.",
        vec![
            ("role_arn", attr(T::String, C::Required, "ARN of the role, `arn:aws:iam::<account>:role/<name>`.")),
            ("session_name", attr(T::String, oc.clone(), "Session name (2–64 of `[\\w+=,.@-]`). Defaults to `immutable-<unix time>`.")),
            ("external_id", attr(T::String, oc.clone(), "External ID the role's trust policy asks for (2–1224 characters).")),
            ("duration", attr(T::String, oc.clone(), "Session length, a duration from `\"15m\"` to `\"12h\"`. Defaults to `\"1h\"`; renewed before it ends.")),
            ("policy", attr(T::String, oc.clone(), "An inline session policy (JSON): the session may do only what both it and the role allow.")),
            ("policy_arns", attr(str_set(), oc.clone(), "Managed session policies (at most 10), as `policy`.")),
            ("tags", attr(str_map(), oc.clone(), "Session tags (at most 50), for attribute-based access control in the role's policies.")),
        ],
        vec![],
    );
    Schema {
        version: 0,
        block: block(
            "Immutable releases on AWS. Credentials come from the standard AWS chain (environment, shared profile, SSO, web identity, `credential_process`, instance role), with `assume_role` on top; `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` work too.",
            vec![
                ("region", attr(T::String, oc.clone(), "AWS region; else `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's region.")),
                ("profile", attr(T::String, oc.clone(), "Shared config and credentials profile.")),
                ("endpoint_url", attr(T::String, oc.clone(), "One endpoint for every service, e.g. a local emulator.")),
                ("poll_interval", attr(T::String, oc.clone(), "Ceiling of the adaptive poll interval of every wait, a duration. Defaults to `\"5s\"`.")),
                ("max_retries", attr(T::Number, oc.clone(), "Attempts for throttled or transient AWS errors, 1–100. Defaults to 10.")),
                ("default_tags", attr(str_map(), oc.clone(), "Tags merged under each release's `tags`.")),
                ("retry_mode", attr(T::String, oc.clone(), "`\"standard\"` or `\"adaptive\"` (client-side rate limiting when AWS throttles), as `AWS_RETRY_MODE`, which applies when this is unset. Defaults to `\"standard\"`.")),
                ("allowed_account_ids", attr(str_set(), oc.clone(), "Refuse to run against any other AWS account: the account of the credentials (after `assume_role`) is read once with `sts:GetCallerIdentity`, and a plan against another fails naming it. Not with `forbidden_account_ids`.")),
                ("forbidden_account_ids", attr(str_set(), oc.clone(), "Refuse to run against these AWS accounts (read as for `allowed_account_ids`). Not with `allowed_account_ids`.")),
                ("shared_config_files", attr(T::List(Box::new(T::String)), oc.clone(), "Shared config files, as `AWS_CONFIG_FILE` (which applies when this is unset); `~` is the home directory.")),
                ("shared_credentials_files", attr(T::List(Box::new(T::String)), oc.clone(), "Shared credentials files, as `AWS_SHARED_CREDENTIALS_FILE` (which applies when this is unset); `~` is the home directory.")),
                ("custom_ca_bundle", attr(T::String, oc.clone(), "A PEM file of the certificate authorities to trust instead of the system's (a proxy that re-signs TLS), as `AWS_CA_BUNDLE`, which applies when this is unset, then the profile's `ca_bundle`; `~` is the home directory. Refused at plan when the file cannot be read or holds no certificate.")),
                ("http_proxy", attr(T::String, oc.clone(), "URL of the proxy for HTTP requests to AWS, and for HTTPS requests too unless `https_proxy` is given, as hashicorp/aws's; else `HTTP_PROXY` / `http_proxy`. `\"\"`: none. Requests to this machine (`localhost`, loopback addresses) and to link-local addresses (instance metadata) never go through a proxy.")),
                ("https_proxy", attr(T::String, oc.clone(), "URL of the proxy for HTTPS requests to AWS (tunnelled with `CONNECT`); else `http_proxy`, else `HTTPS_PROXY` / `https_proxy`. `\"\"`: none.")),
                ("no_proxy", attr(T::String, oc.clone(), "Comma-separated hosts reached without a proxy, as `NO_PROXY` (which applies when this is unset): `*`, host names, domains (`.example.com` for the names below it only), addresses, CIDR blocks, each optionally with `:port`.")),
            ],
            vec![
                ("endpoints", NestedBlock::Optional(endpoints)),
                ("assume_role", NestedBlock::Optional(assume_role)),
            ],
        ),
    }
}
