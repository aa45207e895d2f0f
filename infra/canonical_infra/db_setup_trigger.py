"""Lambda handler run by CloudFormation during `cdk deploy` (a CDK trigger, see orchestration.py): start
the db-setup ECS task, wait for it, and fail the deployment if it fails. Its source is inlined into
the template; it needs only boto3, which the Lambda runtime provides."""

import os

import boto3


def handler(event, context):
    ecs = boto3.client("ecs")
    cluster = os.environ["CLUSTER"]
    started = ecs.run_task(
        cluster=cluster,
        taskDefinition=os.environ["TASK_DEFINITION"],
        launchType="FARGATE",
        startedBy="cdk-deploy",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": os.environ["SUBNETS"].split(","),
                "securityGroups": [os.environ["SECURITY_GROUP"]],
                "assignPublicIp": "DISABLED",
            }
        },
    )
    if started["failures"]:
        raise RuntimeError(f"db-setup did not start: {started['failures']}")
    arn = started["tasks"][0]["taskArn"]
    # Up to ~14 minutes: image pull, migrations. The Lambda itself may run 15.
    ecs.get_waiter("tasks_stopped").wait(
        cluster=cluster, tasks=[arn], WaiterConfig={"Delay": 10, "MaxAttempts": 85}
    )
    task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    code = task["containers"][0].get("exitCode")
    if code != 0:
        raise RuntimeError(
            f"db-setup failed (exit code {code}, {task.get('stoppedReason')}): "
            f"see its log stream db-setup/db-setup/{arn.rsplit('/', 1)[-1]}"
        )
    return {"taskArn": arn}
