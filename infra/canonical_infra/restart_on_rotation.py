"""Lambda handler (inlined into the template): after a database secret the Dagster services inject has
rotated, start fresh tasks of those services, so each holds the newest credentials.

Why: ECS injects a secret when a task starts. With multi-user rotation the credentials a task holds stay
valid for one more rotation period after the secret moves on, and then stop working: a daemon left
running for two periods would lose its database. Restarting on every successful rotation keeps every
service at most one rotation behind, by construction. Run tasks start fresh for each run anyway.
"""

import os

import boto3

ecs = boto3.client("ecs")


def handler(event, context):
    cluster = os.environ["CLUSTER"]
    services = [s for s in os.environ["SERVICES"].split(",") if s]
    secret = event.get("detail", {}).get("additionalEventData", {}).get("SecretId", "?")
    for service in services:
        ecs.update_service(cluster=cluster, service=service, forceNewDeployment=True)
    print(f"secret {secret} rotated: new deployments of {', '.join(services)} in {cluster}")
    return {"restarted": services}
