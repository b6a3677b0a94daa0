"""The training objective: IIC's mutual information by hand, and the over-clustering head's term."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from aesweep.augment import BatchAugment
from aesweep.loss import CompositeLoss, iic_loss
from aesweep.model import ConvAutoencoder


def test_iic_of_two_views_that_agree_on_two_balanced_clusters_is_minus_log_2_times_the_marginal_weight():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # joint = diag(1/2, 1/2), marginals 1/2
    # -sum_ij P_ij (log P_ij - lamb log P_i - lamb log P_j) = -(log 1/2 - 2 lamb log 1/2) = (1 - 2 lamb) log 2
    assert iic_loss(p, p, lamb=1.0).item() == pytest.approx(-math.log(2), abs=1e-6)
    assert iic_loss(p, p, lamb=2.0).item() == pytest.approx(-3 * math.log(2), abs=1e-6)


def test_iic_of_views_that_are_independent_is_zero_at_lambda_1():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # q says nothing about p
    assert iic_loss(p, q, lamb=1.0).item() == pytest.approx(0.0, abs=1e-6)


def loss_config(**weights: float):
    keys = dict(recon="mse", recon_weight=1.0, entropy_weight=0.0, balance_weight=0.0, consistency_weight=0.0,
                iic_weight=1.0, iic_lambda=2.0, overcluster_weight=0.0, views=1, warmup_epochs=0)
    return OmegaConf.create({**keys, **weights})


def test_the_overclustering_term_is_iic_on_the_wide_head_added_once_at_its_weight():
    torch.manual_seed(0)
    model = ConvAutoencoder(heads=2, overcluster=30)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    no_augment = BatchAugment()  # the "augmented" view is the image itself, so the term is computable here

    without, terms_without = CompositeLoss(loss_config(), no_augment)(model, x)
    with_it, terms = CompositeLoss(loss_config(overcluster_weight=0.5), no_augment)(model, x)

    wide = torch.softmax(model.parts(x).overcluster, dim=-1)
    assert terms["overcluster"].item() == pytest.approx(iic_loss(wide, wide, 2.0).item(), rel=1e-5)
    assert with_it.item() == pytest.approx(without.item() + 0.5 * terms["overcluster"].item(), rel=1e-5)
    # the heads' own losses, by which the scored head is chosen, do not include the shared term
    assert terms["head0"].item() == pytest.approx(terms_without["head0"].item(), rel=1e-6)
    assert "overcluster" not in terms_without


def test_the_overclustering_term_trains_the_wide_head_and_the_shared_features():
    torch.manual_seed(0)
    model = ConvAutoencoder(overcluster=30)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    _, terms = CompositeLoss(loss_config(recon_weight=0.0, iic_weight=0.0, overcluster_weight=1.0),
                             BatchAugment(rotation=20.0))(model, x)
    terms["overcluster"].backward()
    assert model.overcluster.weight.grad.abs().sum() > 0
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert model.heads.linear.weight.grad is None  # the scored heads are not what this term trains


def test_with_two_views_each_view_term_is_its_mean_over_two_augmented_copies():
    torch.manual_seed(0)
    model = ConvAutoencoder(heads=1, overcluster=20).eval()  # eval: batch norm gives the same output per pass
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    augment = BatchAugment(rotation=30.0, noise=0.1)
    cfg = loss_config(consistency_weight=1.0, overcluster_weight=1.0, views=2)

    torch.manual_seed(5)
    _, terms = CompositeLoss(cfg, augment)(model, x)

    torch.manual_seed(5)  # the same two copies, drawn in the same order
    copies = [augment(x), augment(x)]
    parts = model.parts(x)
    p, wide = torch.softmax(parts.logits[:, 0], -1), torch.softmax(parts.overcluster, -1)
    iic, consistency, overcluster = [], [], []
    for copy in copies:
        logits, wide_logits = model.all_logits(copy)
        q = torch.softmax(logits[:, 0], -1)
        iic.append(iic_loss(p, q, 2.0).item())
        consistency.append(-(p * torch.log(q)).sum(-1).mean().item())
        overcluster.append(iic_loss(wide, torch.softmax(wide_logits, -1), 2.0).item())
    assert not torch.equal(copies[0], copies[1]) and consistency[0] != consistency[1]  # two different copies
    assert terms["iic"].item() == pytest.approx(sum(iic) / 2, rel=1e-5)
    assert terms["consistency"].item() == pytest.approx(sum(consistency) / 2, rel=1e-5)
    assert terms["overcluster"].item() == pytest.approx(sum(overcluster) / 2, rel=1e-5)


def test_without_view_terms_or_an_overclustering_head_no_augmented_view_is_computed():
    class CountingAugment(BatchAugment):
        calls = 0

        def __call__(self, images):
            CountingAugment.calls += 1
            return super().__call__(images)

    x = torch.rand(8, 1, 28, 28)
    entropy_only = loss_config(iic_weight=0.0, entropy_weight=1.0, overcluster_weight=1.0)
    CompositeLoss(entropy_only, CountingAugment(rotation=20.0))(ConvAutoencoder(heads=1), x)
    assert CountingAugment.calls == 0  # overcluster_weight acts only on a model with that head
    CompositeLoss(entropy_only, CountingAugment(rotation=20.0))(ConvAutoencoder(heads=1, overcluster=20), x)
    assert CountingAugment.calls == 1
