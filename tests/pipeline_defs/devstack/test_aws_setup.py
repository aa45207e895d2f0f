"""The dev stack's AWS side."""

from __future__ import annotations

from pipeline_defs.devstack.aws_setup import DEV_QUEUE_WAIT_SECONDS


def test_the_dev_queue_long_polls_less_than_one_daemon_sensor_loop():
    # A landing_sensor tick that waits on the queue must end before the daemon's next loop, or the loop
    # finds it still in flight and the sensor ticks every other loop.
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    assert 0 < DEV_QUEUE_WAIT_SECONDS < MIN_INTERVAL_LOOP_TIME
