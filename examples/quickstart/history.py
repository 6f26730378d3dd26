"""Prints `terraform output -json history` (read on stdin) as a table."""
import json
import sys

rows = json.load(sys.stdin)
print(f"{'release':>7}  {'fleet':<8} {'image':<22} {'status':<12} reason")
for r in rows:
    print(f"{r['release']:>7}  {r['fleet_name']:<8} {r['image_id']:<22} {r['status']:<12} {r['reason'] or ''}")
