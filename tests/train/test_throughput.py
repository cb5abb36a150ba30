"""Tests for tokens/s and MFU (dynamics.train.throughput).

Run: `python -m pytest -q tests/train/test_throughput.py`
"""

from __future__ import annotations

import time

import pytest

from dynamics.train.throughput import ThroughputMeter, mfu, peak_flops_per_device


@pytest.mark.parametrize(
    ("device", "precision", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 PCIe", "bf16", 756.0),
        ("NVIDIA H100 NVL", "fp32", 417.5),
        ("NVIDIA H200", "bf16", 989.4),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
        ("NVIDIA A100-PCIE-40GB", "fp32", 156.0),
        ("NVIDIA A10G", "bf16", 70.0),
        ("NVIDIA A10", "bf16", 125.0),
        ("NVIDIA L40S", "bf16", 362.0),
        ("NVIDIA L4", "bf16", 121.0),
        ("AMD Instinct MI300X", "bf16", 1307.4),
    ],
)
def test_peak_from_device_name(device: str, precision: str, tflops: float) -> None:
    assert peak_flops_per_device(device, precision) == pytest.approx(tflops * 1e12)


def test_unknown_device_and_cpu_have_no_peak_unless_configured() -> None:
    assert peak_flops_per_device("cpu", "bf16") is None
    assert peak_flops_per_device("Some Future GPU", "bf16") is None
    assert peak_flops_per_device("cpu", "bf16", override_tflops=2.5) == pytest.approx(2.5e12)
    assert peak_flops_per_device("NVIDIA H100", "bf16", override_tflops=500) == pytest.approx(5e14)


def test_mfu_formula() -> None:
    # 7B parameters, 4096 tokens/s per device on 8 devices of 312 TFLOP/s: 6·7e9·32768 / (8·312e12)
    assert mfu(7_000_000_000, 32_768, 1.0, 8, 312e12) == pytest.approx(6 * 7e9 * 32_768 / (8 * 312e12))


def test_meter_counts_only_timed_intervals() -> None:
    meter = ThroughputMeter(num_parameters=1000, devices=2, peak_per_device=1e9)
    assert meter.metrics() == {}
    meter.start()
    time.sleep(0.05)
    meter.stop(tokens=500)
    time.sleep(0.2)  # evaluation between steps: not counted
    meter.start()
    time.sleep(0.05)
    meter.stop(tokens=500)
    figures = meter.metrics()
    assert 0.09 <= meter.seconds < 0.2
    assert figures["tokens_per_s"] == pytest.approx(1000 / meter.seconds)
    assert figures["mfu"] == pytest.approx(6 * 1000 * 1000 / meter.seconds / (2 * 1e9))


def test_meter_without_peak_reports_no_mfu() -> None:
    meter = ThroughputMeter(num_parameters=10, devices=1, peak_per_device=None)
    meter.start()
    meter.stop(tokens=3)
    assert set(meter.metrics()) == {"tokens_per_s"}


def test_stop_without_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="without start"):
        ThroughputMeter(1, 1, None).stop(1)
