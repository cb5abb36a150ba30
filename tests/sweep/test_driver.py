"""The sweep driver's pieces that need no cluster (dynamics.sweep.driver)."""

from __future__ import annotations

from dynamics.sweep.driver import one_line


def test_one_line_takes_the_workers_own_error_out_of_rays_wrapping() -> None:
    wrapped = RuntimeError(
        "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1, ip=127.0.0.1)\n"
        "  File \"trial.py\", line 3, in run_trial\n"
        "ray.train.WorkerGroupError: Training failed due to worker errors:\n"
        "[Rank 0,1 Error Snippet]:\n"
        "Traceback (most recent call last):\n"
        "ValueError: 0 trainable items cannot fill one global batch of 16\n\n"
    )
    assert one_line(wrapped) == "ValueError: 0 trainable items cannot fill one global batch of 16"


def test_one_line_names_the_type_of_a_plain_message() -> None:
    assert one_line(KeyError("tiny-3m")) == "KeyError: 'tiny-3m'"
    assert one_line(ValueError("")) == "ValueError: "
