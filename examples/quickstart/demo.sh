#!/usr/bin/env bash
# The main job on the local AWS: apply a release, release a new image, roll back with one
# line, and show the history. Run by `make demo`, which sets TERRAFORM, ENDPOINT,
# PROVIDER_DIR and PY.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/main.tf" "$work/"
cd "$work"

cat > terraform.rc <<RC
provider_installation {
  dev_overrides { "immutable-infra/immutable" = "$PROVIDER_DIR" }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraform.rc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
tf() { "$TERRAFORM" "$@" -no-color 2>&1 | grep -v -e 'Provider development overrides' -e 'dev_overrides' \
  -e '^ - immutable-infra' -e 'may therefore not match' -e 'incompatible with published' -e 'The following provider development' -e '^configuration:$' | cat -s; }

# Every demo starts from an empty account.
"$PY" -c "import urllib.request, sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/moto-api/reset', method='POST'))" "$ENDPOINT"
step "Fixtures a user already has: a VPC, subnets, a security group, an ALB listener, two images ($ENDPOINT)"
"$PY" "$here/fixtures.py" "$ENDPOINT" > fx.json
"$PY" - <<'PYEOF'
import json
fx = json.load(open("fx.json"))
json.dump({k: fx[k] for k in ("endpoint", "listener_arn", "vpc_id", "subnet_ids", "security_group_id")},
          open("terraform.tfvars.json", "w"))
PYEOF
A=$("$PY" -c 'import json; print(json.load(open("fx.json"))["image_a"])')
B=$("$PY" -c 'import json; print(json.load(open("fx.json"))["image_b"])')
echo "listener: $("$PY" -c 'import json; print(json.load(open("fx.json"))["listener_arn"])')"
echo "images:   $A (current), $B (new)"

step "1. First release of image $A: plan, then apply (launch, health gate, 100 % of traffic)"
tf plan -var "image_id=$A" | sed -n '/Terraform will perform/,/^Plan:/p'
tf apply -auto-approve -var "image_id=$A" | sed -n '/Creating\|Creation complete/p'
echo "release $("$TERRAFORM" output -raw release) serves from $("$TERRAFORM" output -raw fleet_name)"
tf output traffic

step "2. Release image $B as a canary: a parallel fleet, health-checked, then 10 % → 50 % → 100 %"
echo "The plan is an in-place update; it says what the apply will do (planned_steps and"
echo "planned_duration, here read from terraform show -json as a pipeline would):"
"$TERRAFORM" plan -no-color -input=false -var "image_id=$B" -out=canary.plan > /dev/null
"$TERRAFORM" show -json canary.plan | "$PY" -c '
import json, sys
after = [r for r in json.load(sys.stdin)["resource_changes"] if r["address"] == "immutable_release.web"][0]["change"]["after"]
for s in after["planned_steps"]:
    print("  " + s)
print("  at least " + after["planned_duration"])'
echo
echo "The apply, with the provider's progress (TF_LOG=INFO shows it too):"
TF_LOG=INFO "$TERRAFORM" apply -auto-approve -no-color -var "image_id=$B" 2>&1 \
  | sed -n -e 's/.*provider\.terraform-provider-immutable: \(release [^:]*: \(launching\|healthy\|traffic\|canary pause\|done\)[^:@]*\).*/  \1/p' \
           -e 's/.*\(Modifications complete after [^]]*\]\).*/  \1/p' \
  | sed -e 's/\(canary pause at [0-9]* %\),.*/\1: watching health and alarms/' | uniq
tf output traffic

step "3. One-line rollback: terraform apply -var image_id=\$(terraform output -raw previous_image_id)"
prev=$("$TERRAFORM" output -raw previous_image_id)
echo "previous_image_id = $prev"
start=$("$PY" -c 'import time; print(time.time())')
tf apply -auto-approve -var "image_id=$prev" | sed -n '/Modifying\|Modifications complete/p'
"$PY" -c "import time; print(f'rollback took {time.time() - $start:.1f} s, terraform included (no new fleet: the retained one takes the traffic back)')"
tf output traffic

step "4. History (newest first)"
"$TERRAFORM" output -json history | "$PY" "$here/history.py"

step "5. Nothing left to do: the plan is empty, and the listener (read from AWS) serves the release"
tf plan -var "image_id=$prev" -detailed-exitcode | grep -E 'No changes|Plan:' || true
"$PY" - "$ENDPOINT" <<'PYEOF'
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
elb = boto3.client("elbv2", **kw)
names = {t["TargetGroupArn"]: t["TargetGroupName"] for t in elb.describe_target_groups()["TargetGroups"]}
fx = json.load(open("fx.json"))
action = elb.describe_listeners(ListenerArns=[fx["listener_arn"]])["Listeners"][0]["DefaultActions"][0]
weights = {names[t["TargetGroupArn"]]: t["Weight"] for t in action["ForwardConfig"]["TargetGroups"]}
health = {n: [h["TargetHealth"]["State"] for h in elb.describe_target_health(TargetGroupArn=a)["TargetHealthDescriptions"]] for a, n in names.items()}
for n, w in sorted(weights.items()):
    print(f"listener -> {n}: {w:>3} %   targets: {', '.join(health[n]) or 'none'}")
PYEOF

step "What to try next"
cat <<TXT
- Make a release fail: set health { timeout = "5s" } and point endpoint_url at the fault
  proxy reporting targets unhealthy (cargo run -p acceptance-tests --bin fault-proxy --
  --upstream $ENDPOINT --unhealthy all; contributing/fault-proxy.md): the apply
  fails with the figures and traffic stays where it was.
- Add alarm_names to the release and set an alarm to ALARM during a pause: the release
  aborts and traffic goes back (aws cloudwatch set-alarm-state against the emulator).
- Press Ctrl-C during a canary pause: traffic goes back to the serving fleet; the next
  apply finishes the release.
- Change desired_capacity: the serving fleet scales in place, no release.
- terraform import immutable_release.web web rebuilds the state from AWS alone.
- The release keeps serving in the local AWS ($ENDPOINT); make emulator-down stops it.
TXT
