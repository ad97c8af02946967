"""The torch device and the CPU threads."""

import pytest

from cellgan.device import free_cpu_threads, resolve_device
from cellgan.errors import UsageError


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [(2, 0.0, 2), (2, 0.4, 2), (2, 1.2, 1), (2, 5.0, 1), (16, 3.6, 12), (1, 0.0, 1)],
)
def test_free_cpu_threads_leaves_busy_cores_alone(cores, load, expected):
    assert free_cpu_threads(cores=cores, load=load) == expected


def test_resolve_device():
    import torch

    before = torch.get_num_threads()
    try:
        assert resolve_device("cpu").type == "cpu"
        assert 1 <= torch.get_num_threads() <= free_cpu_threads(load=0.0)
    finally:
        torch.set_num_threads(before)
    for name in ("tpu-9", "mps", "meta"):
        with pytest.raises(UsageError, match=f"unknown or unavailable device '{name}'"):
            resolve_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda")
