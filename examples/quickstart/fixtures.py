"""What a user already has before the first release: a VPC with subnets, an ALB with a
listener, and machine images. Creates them in the local AWS and prints them as tfvars JSON."""
import json
import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
ec2 = boto3.client("ec2", **kw)
elb = boto3.client("elbv2", **kw)

vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
subnets = [s["SubnetId"] for s in ec2.describe_subnets(
    Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]][:2]
lbs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "demo"]
lb = lbs[0]["LoadBalancerArn"] if lbs else elb.create_load_balancer(
    Name="demo", Subnets=subnets, Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
listeners = elb.describe_listeners(LoadBalancerArn=lb)["Listeners"]
listener = listeners[0]["ListenerArn"] if listeners else elb.create_listener(
    LoadBalancerArn=lb, Protocol="HTTP", Port=80,
    DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
)["Listeners"][0]["ListenerArn"]
# The instances' security group: it admits the load balancer on the port they serve.
groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["demo-web"]},
                                               {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
sg = groups[0]["GroupId"] if groups else ec2.create_security_group(
    GroupName="demo-web", Description="the demo's instances", VpcId=vpc)["GroupId"]
images = [i["ImageId"] for i in ec2.describe_images(
    Owners=["amazon"], Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"]]
second = next(i for i in images if i != "ami-04681a1dbd79675a5" and len(i) in (12, 21))
json.dump({"endpoint": endpoint, "listener_arn": listener, "vpc_id": vpc, "subnet_ids": subnets,
           "security_group_id": sg,
           "image_a": "ami-04681a1dbd79675a5", "image_b": second}, sys.stdout)
