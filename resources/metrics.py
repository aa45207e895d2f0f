"""Custom CloudWatch metrics the alarms watch (namespace `CanonicalPipeline`). Dagster-free.

Emitting a metric is never worth failing the work it describes: errors are returned, not raised.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

NAMESPACE = "CanonicalPipeline"


def put_count(cloudwatch: Any, name: str, value: float, dimensions: dict[str, str] | None = None) -> str | None:
    """Publish one Count datum; return None, or the reason it could not be published."""
    datum: dict[str, Any] = {"MetricName": name, "Value": value, "Unit": "Count"}
    if dimensions:
        datum["Dimensions"] = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    try:
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[datum])
    except (ClientError, BotoCoreError) as exc:
        return f"metric {name} not published: {exc}"
    return None
