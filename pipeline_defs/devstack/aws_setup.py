"""The stack's AWS side: a moto server on its default address (or the one already answering there),
unless AWS_ENDPOINT_URL names another endpoint; then the buckets, queue, table and topic on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pipeline_defs.devstack.endpoints import DEFAULT_MOTO_ENDPOINT, url_host_port
from pipeline_defs.devstack.errors import DevStackError
from pipeline_defs.devstack.moto_server import MotoServer, MotoServerError
from pipeline_defs.devstack.processes import display_path
from pipeline_defs.devstack.provisioning import AwsResources, ensure_aws_resources, set_queue_wait
from resources.settings import Settings

# The dev ingest queue long-polls this long when a landing_sensor tick finds it empty: an upload during
# the wait is registered and its run requested at once. Below the daemon's 5 s sensor loop, so the
# next tick starts at the next loop (bench/latency_results.md).
DEV_QUEUE_WAIT_SECONDS = 4


def start_moto(local_dir: Path, echo: Callable[[str], None]) -> MotoServer:
    """A moto server on the default endpoint: started here, or the one already answering there (then
    `reused`, and not ours to stop)."""
    host, port = url_host_port(DEFAULT_MOTO_ENDPOINT, 4566)
    moto = MotoServer(host, port, log_path=local_dir / "moto.log", reuse_existing=True, die_with_parent=True)
    t = time.monotonic()
    try:
        moto.start()
    except MotoServerError as exc:
        raise DevStackError(str(exc)) from exc
    if moto.reused:
        echo(f"• moto: a moto server already answers on {moto.endpoint_url}; reusing it (not ours to stop)")
    else:
        echo(
            f"• moto: started on {moto.endpoint_url} in {time.monotonic() - t:.1f}s "
            f"(log {display_path(moto.log_path)})"
        )
    return moto


def provision_aws(settings: Settings, echo: Callable[[str], None]) -> AwsResources:
    """What the CDK app creates on AWS, on the stack's endpoint; the queue long-polls as a dev tick wants."""
    s = settings
    res = ensure_aws_resources(s)
    if res.queue_url:
        set_queue_wait(s, res.queue_url, DEV_QUEUE_WAIT_SECONDS)
    echo(
        f"  buckets {s.raw_bucket}, {s.results_bucket}; queue {s.ingest_queue or '(disabled)'} "
        f"← raw bucket events (long-polled {DEV_QUEUE_WAIT_SECONDS}s); table {s.jobs_table}; topic {s.notify_topic}"
    )
    return res
