"""Launch and terminate Dagster runs over GraphQL with plain httpx (dagster-graphql would pull in dagster)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

from api.problems import ApiProblem

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message reason } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

TERMINATE_RUN = """
mutation TerminateRun($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunSuccess { run { runId status } }
    ... on TerminateRunFailure { message run { runId status } }
    ... on RunNotFoundError { runId message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class Termination:
    outcome: Literal["terminated", "not_found", "failed"]
    message: str | None
    run_status: str | None  # Dagster's run status as it answered (e.g. STARTING when it could not yet)


def _unavailable(detail: str) -> ApiProblem:
    return ApiProblem(
        503,
        "dagster_unavailable",
        detail,
        title="Service unavailable",
        error_type="OrchestratorUnavailable",
        headers={"Retry-After": "10"},
        suggestions=["Retry shortly", "GET /health shows whether Dagster is reachable"],
    )


class DagsterClient:
    def __init__(
        self,
        base_url: str,
        *,
        location: str,
        repository: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/graphql"
        self.base_url = base_url.rstrip("/")
        self.location = location
        self.repository = repository
        self.timeout = timeout
        self.transport = transport

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                resp = client.post(self.url, json={"query": query, "variables": variables})
        except httpx.HTTPError as exc:
            raise _unavailable(f"Dagster is not reachable ({type(exc).__name__})") from exc
        if resp.status_code >= 500:
            raise _unavailable(f"Dagster answered HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise _unavailable("Dagster answered something that is not JSON") from exc
        if body.get("errors") and not body.get("data"):
            raise ApiProblem(
                502,
                "dagster_error",
                "Dagster refused the request: "
                + "; ".join(str(e.get("message", "")) for e in body["errors"])[:500],
                title="Bad gateway",
                error_type="OrchestratorError",
            )
        return body.get("data") or {}

    def launch(self, job_name: str, run_config: dict[str, Any], tags: dict[str, str]) -> str:
        """The new run's id; ApiProblem when Dagster refuses."""
        data = self._post(
            LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": self.location,
                        "repositoryName": self.repository,
                        "jobName": job_name,
                    },
                    "runConfigData": run_config,
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
                }
            },
        )
        res = data.get("launchRun") or {}
        kind = res.get("__typename")
        if kind == "LaunchRunSuccess":
            return str(res["run"]["runId"])
        if kind == "RunConfigValidationInvalid":
            msgs = [e.get("message", "") for e in res.get("errors", [])]
            raise ApiProblem(
                422,
                "invalid_job_config",
                "Dagster refused the run config: " + "; ".join(msgs)[:500],
                error_type="ValidationError",
                errors=[{"field": "config", "message": m} for m in msgs],
            )
        raise ApiProblem(
            502,
            "dagster_launch_failed",
            f"Dagster did not launch the run ({kind}): {str(res.get('message', ''))[:300]}",
            title="Bad gateway",
            error_type="OrchestratorError",
            suggestions=["Check that the code location is loaded in Dagster"],
        )

    def terminate(self, run_id: str) -> Termination:
        """Ask Dagster to terminate the run (its default, safe policy: the run launcher stops the process)."""
        res = self._post(TERMINATE_RUN, {"runId": run_id}).get("terminateRun") or {}
        kind = res.get("__typename")
        run_status = (res.get("run") or {}).get("status")
        if kind == "TerminateRunSuccess":
            return Termination("terminated", None, run_status)
        if kind == "RunNotFoundError":
            return Termination("not_found", res.get("message"), None)
        if kind == "TerminateRunFailure":
            return Termination("failed", res.get("message"), run_status)
        raise ApiProblem(
            502,
            "dagster_terminate_failed",
            f"Dagster did not terminate the run ({kind})",
            title="Bad gateway",
            error_type="OrchestratorError",
        )

    def ping(self) -> None:
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                resp = client.get(self.base_url + "/server_info")
        except httpx.HTTPError as exc:
            raise ConnectionError(type(exc).__name__) from exc
        if resp.status_code != 200:
            raise ConnectionError(f"HTTP {resp.status_code}")
