"""Tests of the torch custom ops torch.ops.aigc.sample / filter_probs (CPU here;
the CUDA kernel is exercised by tests/test_ops_cuda.py where a GPU exists)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigc_engine import ops  # noqa: E402
from aigc_engine import sampling as S  # noqa: E402
from aigc_engine.sampling import SamplingParams as P  # noqa: E402


def op_args(rows: int, vocab: int, hist: int = 0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Logits, the seven per-row parameter tensors, the three keys, history."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=g) * 2
    history = torch.randint(-1, vocab, (rows, hist), generator=g)
    return (
        x,
        torch.rand(rows, generator=g) + 0.3,  # temperature
        torch.randint(0, vocab + 2, (rows,), generator=g).to(torch.int32),  # top_k
        torch.rand(rows, generator=g) * 0.6 + 0.45,  # top_p
        torch.rand(rows, generator=g) * 0.05,  # min_p
        torch.rand(rows, generator=g) * 0.5 + 0.9,  # repetition
        torch.rand(rows, generator=g) * 0.4,  # presence
        torch.rand(rows, generator=g) * 0.4,  # frequency
        torch.randint(0, 2**62, (rows,), generator=g),  # seed
        torch.arange(rows),  # stream
        torch.randint(0, 10**6, (rows,), generator=g),  # step
        history,
    )


NAMES = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
         "frequency_penalty")


def packed(args: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The ops' params tensor of op_args' per-row tensors."""
    return ops.pack_params(args[0].shape[0], **dict(zip(NAMES, args[1:8], strict=True)))


def sample_args(args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (args[0], packed(args), *args[8:])


def numpy_params(args: tuple[torch.Tensor, ...]) -> list[P]:
    t, k, p, mp, rep, pres, freq = (a.tolist() for a in args[1:8])
    return [
        P(
            temperature=t[i],
            top_k=k[i],
            top_p=p[i],
            min_p=mp[i],
            repetition_penalty=rep[i],
            presence_penalty=pres[i],
            frequency_penalty=freq[i],
        )
        for i in range(len(t))
    ]


def test_op_equals_numpy_path() -> None:
    args = op_args(24, 700, hist=9)
    out = torch.ops.aigc.sample(*sample_args(args))
    assert out.dtype == torch.int64 and out.shape == (24,)
    hist = args[11].numpy()
    expected = S.sample(
        args[0].numpy(),
        numpy_params(args),
        seed=args[8].numpy(),
        stream=args[9].numpy(),
        step=args[10].numpy(),
        history=hist,
    )
    np.testing.assert_array_equal(out.numpy(), expected)
    probs = torch.ops.aigc.filter_probs(args[0], packed(args), args[11])
    np.testing.assert_array_equal(
        probs.numpy(), S.filter_probs(args[0].numpy(), numpy_params(args), history=hist)
    )


def test_wrapper_broadcasts_scalars_and_matches() -> None:
    x = torch.randn(5, 300)
    a = ops.sample(x, seed=4, step=torch.arange(5), top_k=20, top_p=0.9, temperature=0.8)
    b = S.sample(x.numpy(), P(top_k=20, top_p=0.9, temperature=0.8), seed=4, step=np.arange(5))
    np.testing.assert_array_equal(a.numpy(), b)
    one = ops.sample(x[2], seed=4, step=2, top_k=20, top_p=0.9, temperature=0.8)
    assert one.shape == () and int(one) == b[2]
    pr = ops.filter_probs(x, top_p=0.5)
    np.testing.assert_array_equal(pr.numpy(), S.filter_probs(x.numpy(), P(top_p=0.5)))


def test_cpu_kernel_is_zero_copy() -> None:
    from aigc_engine import _core

    x = torch.randn(3, 50)
    view = x.numpy()
    assert view.__array_interface__["data"][0] == x.data_ptr()
    # The core accepts that view without converting it (float32, C-contiguous).
    _core.sample_batch(view, S.RowParams([P()]).packed, 0, 0, 0)


def test_other_float_dtypes_are_converted() -> None:
    x = torch.randn(4, 100)
    a = ops.sample(x.double(), seed=1, top_k=10)
    b = ops.sample(x, seed=1, top_k=10)
    assert torch.equal(a, b)
    ops.sample(x.half(), seed=1, top_k=10)


@pytest.mark.parametrize("op", ["sample", "filter_probs"])
def test_opcheck(op: str) -> None:
    args = op_args(6, 120, hist=4)
    op_inputs = sample_args(args) if op == "sample" else (args[0], packed(args), args[11])
    torch.library.opcheck(getattr(torch.ops.aigc, op).default, op_inputs)


def test_torch_compile_traces_the_op() -> None:
    def step(logits: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
        return ops.sample(logits * 2.0, seed=seed, top_k=30, top_p=0.9)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 200)
    seed = torch.arange(4)
    assert torch.equal(compiled(x, seed), step(x, seed))


def test_op_errors() -> None:
    args = list(op_args(3, 50))
    bad = args[0].clone()
    bad[1, 7] = float("nan")
    with pytest.raises(ValueError, match="row 1: NaN logit at index 7"):
        torch.ops.aigc.sample(*sample_args((bad, *args[1:])))
    t = args[1].clone()
    t[2] = -1
    with pytest.raises(ValueError, match="row 2: temperature must be finite and >= 0"):
        torch.ops.aigc.sample(*sample_args((args[0], t, *args[2:])))
    p = args[3].clone()
    p[0] = 0
    with pytest.raises(ValueError, match="row 0: top_p must be > 0"):
        torch.ops.aigc.sample(*sample_args((*args[:3], p, *args[4:])))
    with pytest.raises(ValueError, match="history token id 50"):
        ops.sample(args[0], seed=0, history=torch.full((3, 2), 50))
    good = sample_args(tuple(args))
    with pytest.raises(ValueError, match=r"params must be an int32 tensor of shape \(3, 7\)"):
        torch.ops.aigc.sample(good[0], good[1][:2], *good[2:])
    with pytest.raises(ValueError, match=r"seed must have shape \(3,\)"):
        torch.ops.aigc.sample(*good[:2], good[2][:2], *good[3:])
    with pytest.raises(ValueError, match="2-D"):
        torch.ops.aigc.sample(good[0][0], *good[1:])
    with pytest.raises(ValueError, match="unknown sampling option"):
        ops.pack_params(3, top_q=0.5)


def test_packed_params_carry_the_layout_of_the_numpy_face() -> None:
    p = P(temperature=0.5, top_k=7, top_p=0.25, min_p=0.125, repetition_penalty=1.5,
          presence_penalty=-0.5, frequency_penalty=2.0)
    words = ops.pack_params(2, p)
    assert words.dtype == torch.int32 and words.shape == (2, 7)
    np.testing.assert_array_equal(words.numpy().view(S.PARAMS_DTYPE).reshape(2),
                                  S.RowParams([p, p]).packed)
    by_keywords = ops.pack_params(2, temperature=0.5, top_k=7, top_p=0.25, min_p=0.125,
                                  repetition_penalty=1.5, presence_penalty=-0.5,
                                  frequency_penalty=2.0)
    assert torch.equal(words, by_keywords)
    assert torch.equal(ops.pack_params(1), ops.pack_params(1, P()))


def test_cuda_path_says_why_when_unavailable() -> None:
    ok, reason = S.cuda_status()
    if ok:
        pytest.skip("a usable CUDA device exists; covered by test_ops_cuda.py")
    assert reason
    if torch.cuda.is_available():  # torch sees a GPU but our kernels are not usable
        with pytest.raises(RuntimeError, match="not usable"):
            ops.sample(torch.randn(2, 10, device="cuda"), seed=0)
