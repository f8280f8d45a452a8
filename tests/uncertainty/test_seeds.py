"""Seed-level inference: the two-level bootstrap, paired tests over runs, Holm's correction."""

import pytest
import torch

from dropcli.uncertainty import bootstrap, seeds


def test_holm_against_a_hand_computed_case():
    # Sorted: 0.01 x 4 = 0.04, 0.02 x 3 = 0.06, 0.03 x 2 = 0.06, 0.5 x 1 = 0.5.
    assert seeds.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # Monotone: a later p cannot be adjusted below an earlier one; capped at 1.
    assert seeds.holm([0.04, 0.045]) == pytest.approx([0.08, 0.08])
    assert seeds.holm([0.6, 0.7]) == [1.0, 1.0]


def test_the_sign_flip_test_is_exact_for_few_units():
    # Five positive differences: only "all +" and "all -" are as extreme, 2 of 32 patterns.
    assert seeds.sign_flip_p(torch.tensor([1.0, 2.0, 1.5, 0.5, 1.0])) == pytest.approx(2 / 32)
    assert seeds.sign_flip_p(torch.tensor([1.0, -1.0])) == 1.0
    # With three units the smallest possible p is 2/8: three seeds can never show p < 0.05.
    assert seeds.sign_flip_p(torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(0.25)


def test_the_permutation_test_separates_shifted_samples():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(10, generator=generator), torch.randn(10, generator=generator)
    assert seeds.permutation_p(a + 3, b) < 0.001
    assert seeds.permutation_p(a, b) > 0.05


def test_one_unit_is_the_image_bootstrap_and_units_add_their_spread():
    per_example = torch.rand(3, 200, generator=torch.Generator().manual_seed(1))  # three runs' losses
    weights = bootstrap.weights(200, 400, dtype=torch.float64)
    values = (weights @ per_example.double().T / 200).T[:, :, None]  # (units, replicates, 1)
    one = seeds.two_level(values[:1], seeds.draws(1, 400))
    assert torch.allclose(one[:, 0], values[0, :, 0])
    # Runs that differ by a constant: the run draws add that spread to the image-level one.
    shifted = values + torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)[:, None, None]
    both = seeds.two_level(shifted, seeds.draws(3, 400))[:, 0]
    images_only = shifted.mean(dim=0)[:, 0]
    assert both.std() > 5 * images_only.std()
    assert float(both.mean()) == pytest.approx(float(images_only.mean()), abs=0.05)


def test_grouped_is_the_mean_over_each_ensembles_runs():
    values = torch.arange(12.0).view(6, 2, 1)  # six runs, two replicates
    assert seeds.grouped(values, 3)[:, :, 0].tolist() == [[2.0, 3.0], [8.0, 9.0]]
    assert seeds.grouped(values, 4).shape == (1, 2, 1)  # the runs left over form no group
