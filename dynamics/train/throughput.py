"""Training throughput and model FLOPs utilisation (MFU), timed over training steps only.

MFU = 6 · N · tokens / seconds / (devices · peak FLOP/s): the forward and backward matmuls of a dense
transformer with N parameters. It leaves out attention's sequence-squared FLOPs and the recomputation of
activation checkpointing, as PaLM's definition does, so it compares across sequence lengths and memory settings.
"""

from __future__ import annotations

import time

# Dense (no sparsity) peak TFLOP/s per device from the vendors' datasheets: (16-bit tensor, fp32 / tf32 tensor).
# Matched in order against torch.cuda.get_device_name(), so specific names come before their families.
_PEAK_TFLOPS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989.4, 494.7),  # NVIDIA H200 SXM datasheet: BF16 1,979 with sparsity
    ("H100 PCIe", 756.0, 378.0),  # NVIDIA H100 PCIe datasheet
    ("H100 NVL", 835.0, 417.5),
    ("H100", 989.4, 494.7),  # NVIDIA H100 SXM datasheet
    ("H800", 989.4, 494.7),
    ("H20", 148.0, 74.0),
    ("A100", 312.0, 156.0),  # NVIDIA A100 datasheet (40 GB and 80 GB alike)
    ("A800", 312.0, 156.0),
    ("A10G", 70.0, 35.0),  # AWS A10G (a down-clocked A10)
    ("A10", 125.0, 62.5),
    ("L40S", 362.0, 183.0),
    ("L40", 181.0, 90.5),
    ("L4", 121.0, 60.0),
    ("V100", 125.0, 15.7),  # fp16 tensor cores; no bf16
    ("4090", 165.2, 82.6),  # GeForce RTX 4090, fp16 tensor with fp32 accumulate
    ("3090", 71.0, 35.6),
    ("MI300X", 1307.4, 653.7),  # AMD Instinct MI300X datasheet
    ("MI250X", 383.0, 95.7),
)


def peak_flops_per_device(device_name: str, precision: str, override_tflops: float | None = None) -> float | None:
    """Peak FLOP/s of one device for `precision` ('bf16' or 'fp32'); None on a CPU or an unknown device."""
    if override_tflops is not None:
        return override_tflops * 1e12
    for name, half, single in _PEAK_TFLOPS:
        if name.lower() in device_name.lower():
            return (half if precision == "bf16" else single) * 1e12
    return None


def training_flops(num_parameters: int, tokens: int) -> float:
    """6 · N · tokens: forward (2N) and backward (4N) per token."""
    return 6.0 * num_parameters * tokens


def mfu(num_parameters: int, tokens: int, seconds: float, devices: int, peak_per_device: float) -> float:
    """Model FLOPs utilisation of `devices` devices that trained on `tokens` tokens in `seconds`."""
    return training_flops(num_parameters, tokens) / seconds / (devices * peak_per_device)


class ThroughputMeter:
    """Tokens and wall time of training steps only: evaluation between `stop` and `start` does not count."""

    def __init__(self, num_parameters: int, devices: int, peak_per_device: float | None):
        self.num_parameters = num_parameters
        self.devices = devices
        self.peak_per_device = peak_per_device
        self.tokens = 0
        self.seconds = 0.0
        self._began: float | None = None

    def start(self) -> None:
        self._began = time.perf_counter()

    def stop(self, tokens: int) -> None:
        """End a timed interval in which `tokens` tokens (all devices together) were trained on."""
        if self._began is None:
            raise RuntimeError("ThroughputMeter.stop without start")
        self.seconds += time.perf_counter() - self._began
        self.tokens += tokens
        self._began = None

    def metrics(self) -> dict[str, float]:
        """`tokens_per_s` over all devices, and `mfu` when the device's peak is known."""
        if self.seconds <= 0:
            return {}
        figures = {"tokens_per_s": self.tokens / self.seconds}
        if self.peak_per_device:
            figures["mfu"] = mfu(self.num_parameters, self.tokens, self.seconds, self.devices, self.peak_per_device)
        return figures
