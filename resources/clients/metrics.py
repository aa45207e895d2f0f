"""Custom CloudWatch metrics the alarms watch (namespace `CanonicalPipeline`). Dagster-free.

Emitting a metric is never worth failing the work it describes: errors are returned, not raised.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

NAMESPACE = "CanonicalPipeline"  # the default; METRICS_NAMESPACE (resources.settings) overrides it


def put_count(
    cloudwatch: Any,
    name: str,
    value: float,
    *,
    environment: str,
    namespace: str = NAMESPACE,
    dimensions: dict[str, str] | None = None,
) -> str | None:
    """Publish one Count datum with an Environment dimension (plus `dimensions`); return None, or the reason
    it could not be published."""
    dims = {"Environment": environment, **(dimensions or {})}
    datum: dict[str, Any] = {
        "MetricName": name,
        "Value": value,
        "Unit": "Count",
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
    }
    try:
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])
    except (ClientError, BotoCoreError) as exc:
        return f"metric {name} not published: {exc}"
    return None
