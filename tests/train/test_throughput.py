"""MFU: the 6N rule over the device's dense peak, the peak named; n/a where unknown (CPU)."""

from __future__ import annotations

import pytest

from cascade.engine.throughput import PEAK_ENV, mfu, peak_flops, training_precision


def test_h100_bf16_peak_is_989_tflops_dense() -> None:
    p = peak_flops("bf16", "NVIDIA H100 80GB HBM3")
    assert p.tflops == pytest.approx(989.4) and "989.4 TFLOP/s" in p.describe()
    assert peak_flops("fp8", "NVIDIA H100 80GB HBM3").tflops == pytest.approx(1978.9)
    assert peak_flops("bf16", "NVIDIA H100 PCIe").tflops == 756.0  # the longer name wins
    assert peak_flops("bf16", "NVIDIA H200").tflops == pytest.approx(989.4)
    assert training_precision("bf16", "hybrid") == "fp8" and training_precision("bf16", None) == "bf16"


def test_cpu_has_no_mfu_unless_a_peak_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PEAK_ENV, raising=False)
    cpu = peak_flops("fp32", "cpu")
    assert cpu.tflops is None and mfu(1000.0, 135_000_000, cpu, 1) is None and "n/a" in cpu.describe()
    monkeypatch.setenv(PEAK_ENV, "1.5")
    assert peak_flops("fp32", "cpu").tflops == 1.5


def test_mfu_is_six_n_tokens_over_peak_times_devices() -> None:
    p = peak_flops("bf16", "NVIDIA H100 80GB HBM3")
    # 8.19B params at 3,000 tokens/s per GPU on 64 GPUs
    value = mfu(3000.0 * 64, 8_190_735_360, p, 64)
    assert value == pytest.approx(6 * 8_190_735_360 * 3000 / 989.4e12)
