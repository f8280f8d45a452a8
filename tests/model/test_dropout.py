"""The from-scratch dropout against its definition and against torch's own F.dropout."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import accepted
from dropcli.model.dropout import (
    MASK_MODES,
    Dropout,
    check_probability,
    draw_keep,
    dropout,
    pack_bits,
    packed_size,
    random_int16,
    saved_tensor_bytes,
    survivor_scale,
    unpack_bits,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def keep_mask(y: torch.Tensor) -> torch.Tensor:
    """Which elements survived, read off an output whose input had no zeros."""
    return y != 0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_mode", MASK_MODES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_forward_and_backward_use_the_same_mask(device, mask_mode, p):
    torch.manual_seed(0)
    x = (torch.rand(64, 33, device=device) + 0.5).requires_grad_()  # no zeros, so the mask is readable
    y = dropout(x, p, mask_mode=mask_mode)
    keep = keep_mask(y)
    scale = survivor_scale(p, x.dtype)
    assert torch.equal(y, torch.where(keep, x * scale, 0).detach())
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(keep, g * scale, 0))
    assert 0 < keep.float().mean() < 1


@pytest.mark.parametrize("mask_mode", MASK_MODES)
@pytest.mark.parametrize("shape", [(1, 5), (8, 5), (8, 8), (2, 4, 8)])
def test_a_batch_of_one_or_eight_and_a_3d_input_keep_one_mask_for_forward_and_backward(mask_mode, shape):
    # Shapes a (64, 33) batch does not reach: a first dimension of 8 (the packed mask's row
    # count), 64 elements (8 packed bytes), three dimensions.
    torch.manual_seed(3)
    x = (torch.rand(shape) + 0.5).requires_grad_()
    y = dropout(x, 0.4, mask_mode=mask_mode)
    keep = keep_mask(y)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(keep, g * survivor_scale(0.4, x.dtype), 0))


@pytest.mark.parametrize("p", [0.5, 0.75, 0.875])
def test_survivors_are_scaled_by_one_over_one_minus_p_exactly(p):
    # For these p, 1 / (1 - p) is exact in binary, so multiplying and dividing agree bit for bit.
    x = torch.rand(1000) + 0.5
    y = dropout(x, p)
    keep = keep_mask(y)
    assert torch.equal(y, x * keep / (1 - p))


@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_gradcheck_and_gradgradcheck_in_float64(mask_mode):
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)

    def frozen_mask_dropout(x):
        # Re-seeding before each call draws the same mask on every evaluation gradcheck makes.
        torch.manual_seed(1234)
        return dropout(x, 0.4, mask_mode=mask_mode)

    assert torch.autograd.gradcheck(frozen_mask_dropout, (x,))
    assert torch.autograd.gradgradcheck(frozen_mask_dropout, (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_mode", MASK_MODES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_and_mean_within_four_sigma(device, mask_mode, p):
    n = 1_000_000
    torch.manual_seed(7)
    y = dropout(torch.ones(n, device=device), p, mask_mode=mask_mode)
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs((y != 0).double().mean().item() - (1 - p)) < 4 * sigma
    # The mean of y is keep_rate / (1 - p), so its standard error is sigma / (1 - p).
    assert abs(y.double().mean().item() - 1) < 4 * sigma / (1 - p)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.77])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_bernoulli_mode_equals_F_dropout_bit_for_bit_on_cpu(dtype, p, layout):
    x = torch.randn(300, 258, dtype=dtype)
    x = {"contiguous": x, "transposed": x.t(), "strided": x[:, ::2]}[layout]
    torch.manual_seed(3)
    expected = F.dropout(x, p)
    torch.manual_seed(3)
    actual = dropout(x, p, mask_mode="bernoulli")
    assert actual.dtype == dtype
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_bits_mode_matches_bool_mode_for_the_same_draw(device):
    x1 = torch.randn(37, 29, device=device, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    g = torch.randn(37, 29, device=device)
    torch.manual_seed(11)
    y1 = dropout(x1, 0.3, mask_mode="bool")
    torch.manual_seed(11)
    y2 = dropout(x2, 0.3, mask_mode="bits")
    y1.backward(g)
    y2.backward(g)
    assert torch.equal(y1, y2)
    assert torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("shape", [(1,), (8,), (64,), (13, 7), (2, 3, 5, 9), (0, 4)])
def test_pack_bits_round_trip(shape):
    mask = torch.rand(shape) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(mask.numel() / 8)
    assert torch.equal(unpack_bits(packed, mask.shape), mask)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 64, 65, 10**6 + 3])
def test_packed_size_is_the_whole_bytes_that_hold_n_elements(n):
    size = packed_size(n)
    assert isinstance(size, int) and size == math.ceil(n / 8)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 24, 61])
def test_pack_bits_puts_element_j_plus_k_m_in_bit_k_of_byte_j(n):
    mask = torch.rand(n) > 0.5
    m = math.ceil(n / 8)
    padded = mask.tolist() + [False] * (8 * m - n)
    expected = [sum(padded[j + k * m] << k for k in range(8)) for j in range(m)]
    assert pack_bits(mask).tolist() == expected


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 9, 1000])
def test_random_int16_cuts_n_numbers_from_ceil_n_over_4_random_words(n):
    generator = torch.Generator().manual_seed(n)
    numbers = random_int16(n, torch.device("cpu"), generator)
    reference = torch.Generator().manual_seed(n)
    words = torch.empty(math.ceil(n / 4), dtype=torch.int64).random_(-(2**63), None, generator=reference)
    assert numbers.dtype == torch.int16 and numbers.shape == (n,)
    assert torch.equal(numbers, words.view(torch.int16)[:n])
    # No word drawn and left unused: both generators are at the same place.
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=reference))


@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_p_zero_and_eval_return_the_very_input(mask_mode):
    x = torch.randn(4, 4, requires_grad=True)
    assert dropout(x, 0.0, mask_mode=mask_mode) is x
    assert dropout(x, 0.7, training=False, mask_mode=mask_mode) is x
    layer = Dropout(0.7, mask_mode=mask_mode).eval()
    assert layer(x) is x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_p_one_gives_zeros_and_zero_grad_never_nan(device, mask_mode):
    x = torch.tensor([1.0, -2.0, float("inf"), float("-inf"), float("nan")], device=device, requires_grad=True)
    y = dropout(x, 1.0, mask_mode=mask_mode)
    assert torch.equal(y, torch.zeros_like(x))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5", None, True])
def test_invalid_p_is_a_value_error_naming_p(p):
    with pytest.raises(ValueError, match=r"p=") as error:
        dropout(torch.ones(3), p)
    assert repr(p) in str(error.value)
    with pytest.raises(ValueError, match="p="):
        Dropout(p)


def test_invalid_mask_mode():
    with pytest.raises(ValueError, match="mask_mode"):
        dropout(torch.ones(3), 0.5, mask_mode="bytes")


@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_empty_input(mask_mode):
    x = torch.empty(0, 5, requires_grad=True)
    y = dropout(x, 0.5, mask_mode=mask_mode)
    assert y.shape == (0, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_dtype_and_device_are_preserved(device, dtype, mask_mode):
    x = torch.randn(16, 16, device=device, dtype=dtype, requires_grad=True)
    y = dropout(x, 0.5, mask_mode=mask_mode)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == dtype
    assert y.device == x.grad.device == x.device


def test_a_seeded_generator_makes_the_mask_repeatable():
    x = torch.randn(100)
    first = dropout(x, 0.5, generator=torch.Generator().manual_seed(5))
    second = dropout(x, 0.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


@pytest.mark.parametrize("mask_mode, limit", [("bool", 1.0), ("bernoulli", 1.0), ("int16", 1.0), ("bits", 0.13)])
def test_saved_for_backward_bytes_per_element(mask_mode, limit):
    x = torch.randn(256, 256, requires_grad=True)
    per_element = saved_tensor_bytes(lambda x: dropout(x, 0.5, mask_mode=mask_mode), x) / x.numel()
    assert 0 < per_element <= limit


def test_saved_bytes_counts_what_F_dropout_keeps():
    # The measuring stick itself: F.dropout on the CPU keeps a float mask, 4 bytes an element.
    x = torch.randn(256, 256, requires_grad=True)
    assert saved_tensor_bytes(lambda x: F.dropout(x, 0.5), x) == 4 * x.numel()


def test_module_train_and_eval():
    layer = Dropout(0.5)
    x = torch.ones(1000)
    assert (layer(x) == 0).any()
    layer.eval()
    assert torch.equal(layer(x), x)
    assert "p=0.5" in repr(layer) and "mask_mode='bool'" in repr(layer)


@pytest.mark.parametrize("mask_mode", MASK_MODES)
def test_mask_elements_are_independent_of_their_neighbours(mask_mode):
    # Correlation between elements k apart, within a 64-bit word (int16 packs four to a word,
    # so lags 1 to 3 share one) and across words and rows, and between two successive draws.
    # Independent elements give correlations of about 1 / sqrt(n); 5 of those is a clear miss.
    torch.manual_seed(21)
    shape = (512, 1024)
    first = draw_keep(torch.empty(shape), 0.5, mask_mode).flatten().double()
    second = draw_keep(torch.empty(shape), 0.5, mask_mode).flatten().double()
    limit = 5 / math.sqrt(first.numel())
    for lag in (1, 2, 3, 4, 5, 8, 64, 1024):
        assert abs(torch.corrcoef(torch.stack([first[:-lag], first[lag:]]))[0, 1]) < limit, lag
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1]) < limit
    # Each of the four 16-bit positions in a word keeps at the same rate.
    for position in range(4):
        assert abs(first[position::4].mean().item() - 0.5) < 5 * math.sqrt(0.25 / (first.numel() / 4))


@pytest.mark.parametrize("mask_mode", MASK_MODES)
@pytest.mark.parametrize("p", [0.2, 0.5])
def test_a_float_mask_is_the_bool_mask_of_the_same_draw(mask_mode, p):
    like = torch.empty(64, 48)
    torch.manual_seed(4)
    as_bool = draw_keep(like, p, mask_mode)
    torch.manual_seed(4)
    as_float = draw_keep(like, p, mask_mode, dtype=torch.float32)
    assert as_bool.dtype == torch.bool and as_float.dtype == torch.float32
    assert torch.equal(as_float, as_bool.float())


def test_int16_rounds_p_to_a_multiple_of_two_to_the_minus_16():
    like = torch.empty(1000, 1000)
    assert not draw_keep(like, 1 - 2**-18, "int16").any()  # rounds to 1: all dropped
    assert draw_keep(like, 2**-18, "int16").all()  # rounds to 0: all kept
    # p = 0.25 is a multiple of 2**-16: its keep rate is 0.75 within sampling error.
    rate = draw_keep(like, 0.25, "int16").double().mean().item()
    assert abs(rate - 0.75) < 5 * math.sqrt(0.75 * 0.25 / like.numel())


def test_the_bernoulli_draw_leaves_the_generator_where_bernoulli_leaves_it():
    # F.dropout and the bernoulli mode use the same random numbers, so what is drawn next agrees too.
    x = torch.randn(300, 301)
    torch.manual_seed(9)
    F.dropout(x, 0.3)
    after_torch = torch.rand(5)
    torch.manual_seed(9)
    dropout(x, 0.3, mask_mode="bernoulli")
    assert torch.equal(torch.rand(5), after_torch)


def test_the_bernoulli_mode_keeps_a_word_whose_low_53_bits_are_below_the_keep_rate(monkeypatch):
    # bernoulli_'s rule at its boundary, on words chosen by hand: keep = 0.9 makes the boundary
    # c = ceil(0.9 * 2**53) odd, so a draw that dropped the lowest bit would keep the word c.
    from dropcli.model import dropout as dropout_module

    c = math.ceil(0.9 * 2**53)
    assert c % 2 == 1
    high = -(2**53)  # every bit above the 53 read set (the sign bit too): they must be ignored
    words = torch.tensor([c - 1, c, c + high - 1, c + high, 0, 2**53 - 1])
    monkeypatch.setattr(dropout_module, "_random_bits", lambda out, generator: out.copy_(words))
    kept = draw_keep(torch.empty(6), 0.1, "bernoulli")
    assert kept.tolist() == [True, False, True, False, True, False]


def test_off_the_cpu_the_bernoulli_mode_draws_with_bernoulli_itself(monkeypatch):
    # The CPU's faster same-mask draw reads torch's CPU generator layout; elsewhere (a GPU, here
    # the meta device, which has no values but runs the same branch) bernoulli_(1 - p) draws.
    calls = []
    bernoulli_ = torch.Tensor.bernoulli_
    monkeypatch.setattr(torch.Tensor, "bernoulli_", lambda self, *a, **k: calls.append((a, k)) or bernoulli_(self, *a, **k))
    generator = torch.Generator()
    mask = draw_keep(torch.empty(6, 7, device="meta"), 0.3, "bernoulli", generator)
    assert mask.device.type == "meta" and mask.shape == (6, 7) and mask.dtype == torch.bool
    assert calls == [((0.7,), {"generator": generator})]
    calls.clear()
    draw_keep(torch.empty(6, 7), 0.3, "bernoulli", generator)
    assert calls == []  # on the CPU, random words compared at once (bit for bit F.dropout's mask)


def test_under_torch_compile_the_scale_is_the_same_rounded_number_as_a_tensor(monkeypatch):
    from dropcli.model import dropout as dropout_module

    x = torch.ones(3, dtype=torch.float16)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    scale = dropout_module._scale(0.3, x)
    assert isinstance(scale, torch.Tensor) and scale.dtype == torch.float16 and scale.dim() == 0
    assert scale.item() == dropout_module.survivor_scale(0.3, torch.float16)  # 1 / 0.7, rounded to float16


def test_the_bool_mode_keeps_an_element_where_its_uniform_draw_exceeds_p():
    like = torch.empty(50, 60)
    torch.manual_seed(4)
    mask = draw_keep(like, 0.3, "bool")
    torch.manual_seed(4)
    assert torch.equal(mask, torch.rand(50, 60) > 0.3)


def test_the_int16_draw_takes_one_random_word_per_four_elements():
    # No random number drawn and left unused: what is drawn next is what follows ceil(n / 4) words.
    torch.manual_seed(3)
    draw_keep(torch.empty(1001), 0.3, "int16")
    after = torch.rand(5)
    torch.manual_seed(3)
    torch.empty(251, dtype=torch.int64).random_(-(2**63), None)
    assert torch.equal(torch.rand(5), after)


def test_the_function_takes_p_and_training_by_keyword_as_f_dropout_does():
    x = torch.ones(4, 5)
    with pytest.raises(TypeError):
        dropout(x, 0.3, True, None, "int16")  # the generator and mask mode only by name
    same = accepted(
        "dropout(x, p=..., training=...), as F.dropout takes it,", dropout, x, p=0.3, training=False, refused_by=TypeError
    )
    assert same is x


@pytest.mark.parametrize("p", [0, 0.25, 0.5, 1 - 2**-24, 1, 1.0])
def test_every_p_from_0_to_1_is_accepted(p):
    accepted(f"p={p}, where 0 <= p <= 1 is allowed,", check_probability, p, refused_by=ValueError)


def test_the_module_takes_p_by_keyword_as_nn_dropout_does():
    with pytest.raises(TypeError):
        Dropout(0.3, "int16")  # the mask mode only by name: a second number or word is a mistake
    layer = accepted("Dropout(p=...), as nn.Dropout takes it,", Dropout, p=0.3, mask_mode="int16", refused_by=TypeError)
    assert layer.p == torch.nn.Dropout(p=0.3).p == 0.3 and layer.mask_mode == "int16"


def test_mask_modes_read_from_a_config_at_run_time_draw_as_their_literals_do():
    # A config file or --set gives mask_mode as a string built at run time: equal, not the same object.
    x = (torch.rand(8, 9) + 0.5).requires_grad_()  # 8 rows: a mask saved unpacked and read as bits gives wrong gradients
    for mode in ("bits", "bernoulli", "int16"):
        spelled = "".join(mode)  # a new string object
        spelled = spelled[:1] + spelled[1:]
        torch.manual_seed(4)
        y = dropout(x, 0.3, mask_mode=spelled)
        torch.manual_seed(4)
        expected = dropout(x, 0.3, mask_mode=mode)
        assert torch.equal(y, expected), mode
        g = torch.randn_like(y)
        (grad,) = torch.autograd.grad(y, x, g)
        assert torch.equal(grad, torch.where(keep_mask(y), g * survivor_scale(0.3, x.dtype), 0)), mode


def test_the_module_drops_half_by_default_as_nn_dropout_does():
    layer = accepted("Dropout() with its default p", Dropout, refused_by=ValueError)
    assert layer.p == torch.nn.Dropout().p == 0.5
