"""Corruptions in the spirit of MNIST-C: blur, contrast, elastic, speckle, each at an intensity."""

import pytest
import torch

from dropcli.uncertainty import shifts
from dropcli.uncertainty.shifts import Shift


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(40, 784, generator=generator)
    X[:, :28] = 0  # a black first row: speckle keeps it black
    return X


@pytest.mark.parametrize("family", ["blur", "contrast", "elastic", "speckle"])
def test_zero_is_the_identity_and_a_value_is_repeatable(images, family):
    assert shifts.apply(images, Shift(family, 0.0)) is images
    once, twice = shifts.apply(images, Shift(family, 0.5)), shifts.apply(images, Shift(family, 0.5))
    assert torch.equal(once, twice) and once.shape == images.shape
    assert not torch.allclose(once, images)


def test_blur_is_a_gaussian_convolution():
    X = torch.zeros(1, 784)
    X[0, 14 * 28 + 14] = 1.0  # one lit pixel far from the edges
    blurred = shifts.apply(X, Shift("blur", 1.0)).view(28, 28)
    offsets = torch.arange(-3, 4, dtype=torch.float32)
    g = torch.exp(-(offsets**2) / 2)
    g = g / g.sum()
    assert torch.allclose(blurred[11:18, 11:18], g[:, None] * g[None, :], atol=1e-6)
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5)  # nothing reaches the edge


def test_contrast_shrinks_each_image_towards_its_mean(images):
    reduced = shifts.apply(images, Shift("contrast", 0.75))
    assert torch.allclose(reduced.mean(dim=1), images.mean(dim=1), atol=1e-6)
    assert torch.allclose(reduced.std(dim=1), 0.25 * images.std(dim=1), atol=1e-6)
    assert torch.allclose(shifts.apply(images, Shift("contrast", 1.0)), images.mean(dim=1, keepdim=True).expand(-1, 784))


def test_speckle_keeps_black_black_and_stays_in_range(images):
    speckled = shifts.apply(images, Shift("speckle", 2.0))
    assert torch.equal(speckled[:, :28], images[:, :28]) and 0 <= speckled.min() and speckled.max() <= 1


def test_elastic_moves_pixels_by_at_most_its_value():
    # A horizontal ramp: a pixel's value says which column it was read from.
    ramp = (torch.arange(28, dtype=torch.float64) / 27).repeat(28, 1).flatten()[None].repeat(5, 1)
    moved = shifts.apply(ramp, Shift("elastic", 2.0)).view(5, 28, 28)
    inner = moved[:, 4:-4, 4:-4]  # away from the edges, where black comes in
    columns = inner * 27
    expected = torch.arange(4, 24, dtype=torch.float64)
    shift_in_pixels = (columns - expected).abs()
    assert shift_in_pixels.max() <= 2.0 + 1e-9 and shift_in_pixels.max() > 0.5
    # Each image has its own field.
    assert not torch.allclose(moved[0], moved[1])


def test_ranges_are_checked():
    from dropcli.errors import DropcliError

    assert [s.value for s in shifts.parse("contrast=0:1:0.25")] == [0, 0.25, 0.5, 0.75, 1]
    with pytest.raises(DropcliError, match="contrast takes 0 to 1"):
        shifts.parse("contrast=1.5")
