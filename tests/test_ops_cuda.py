"""CUDA kernel of torch.ops.aigc.* against the CPU kernel. Skipped (not passed)
where the CUDA module is not built or no CUDA device is usable."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from aigc_engine import ops  # noqa: E402
from aigc_engine.sampling import cuda_status  # noqa: E402

_OK, _WHY = cuda_status()
pytestmark = pytest.mark.skipif(
    not (_OK and torch.cuda.is_available()), reason=f"CUDA kernels not usable here: {_WHY}"
)

CASES = [
    {},
    {"temperature": 0.0},
    {"top_k": 50},
    {"top_p": 0.9},
    {"min_p": 0.05},
    {"top_k": 50, "top_p": 0.9, "temperature": 0.7},
    {"repetition_penalty": 1.3, "presence_penalty": 0.3, "frequency_penalty": 0.2, "top_p": 0.95},
]


@pytest.mark.parametrize("vocab", [1, 65, 5000, 50257])
@pytest.mark.parametrize("kw", CASES, ids=repr)
def test_cuda_matches_cpu(vocab: int, kw: dict[str, float]) -> None:
    g = torch.Generator().manual_seed(vocab)
    x = torch.randn(16, vocab, generator=g) * 2
    hist = torch.randint(-1, vocab, (16, 12), generator=g)
    steps = torch.arange(16)
    cpu_p = ops.filter_probs(x, history=hist, **kw)
    gpu_p = ops.filter_probs(x.cuda(), history=hist.cuda(), **kw).cpu()
    # Same kept set up to float32 rounding at a threshold; same probabilities.
    assert ((cpu_p > 0) != (gpu_p > 0)).sum() <= 1
    torch.testing.assert_close(gpu_p, cpu_p, rtol=1e-4, atol=1e-6)
    cpu_t = ops.sample(x, seed=5, step=steps, history=hist, **kw)
    gpu_t = ops.sample(x.cuda(), seed=5, step=steps.cuda(), history=hist.cuda(), **kw).cpu()
    assert (
        cpu_t == gpu_t
    ).float().mean() >= 0.9  # equal unless u falls within rounding of a CDF step
    assert bool((gpu_p.gather(1, gpu_t[:, None]) > 0).all())


def test_cuda_draw_distribution() -> None:
    x = torch.randn(1, 30) * 1.5
    n = 50000
    probs = ops.filter_probs(x, top_k=12, top_p=0.9)[0].double()
    toks = ops.sample(
        x.cuda().expand(n, 30).contiguous(),
        seed=9,
        step=torch.arange(n).cuda(),
        top_k=12,
        top_p=0.9,
    ).cpu()
    counts = torch.bincount(toks, minlength=30).double()
    keep = probs > 0
    assert counts[~keep].sum() == 0
    exp = probs[keep] * n
    chi2 = float(((counts[keep] - exp) ** 2 / exp).sum())
    df = int(keep.sum()) - 1
    a = 2 / (9 * df)
    assert chi2 < df * (1 - a + 3.0902 * a**0.5) ** 3  # significance 0.001


def test_cuda_errors() -> None:
    x = torch.randn(3, 40, device="cuda")
    x[1, 4] = float("nan")
    with pytest.raises(ValueError, match="row 1: NaN logit"):
        ops.sample(x, seed=0)
    with pytest.raises(ValueError, match="row 0: top_p"):
        ops.sample(torch.randn(2, 10, device="cuda"), seed=0, top_p=0.0)
    with pytest.raises(ValueError, match="no finite"):
        ops.sample(torch.full((1, 10), float("-inf"), device="cuda"), seed=0)
