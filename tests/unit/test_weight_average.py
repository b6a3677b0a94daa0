"""trainer.ema_decay: the scored weights are a warmed-up exponential moving average of the trained ones."""

import pytest
import torch
from torch import nn

from aesweep.step import WeightAverage


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))


def set_weight(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        model[0].weight.fill_(value)


def test_the_decay_warms_up_as_min_of_decay_and_1_plus_t_over_10_plus_t():
    trained = net()
    set_weight(trained, 0.0)
    average = WeightAverage(trained, decay=0.5)
    set_weight(trained, 1.0)
    average.update()  # t = 0: decay min(0.5, 1/10) = 0.1
    assert average.model[0].weight.item() == pytest.approx(0.9)
    set_weight(trained, 2.0)
    average.update()  # t = 1: decay min(0.5, 2/11)
    assert average.model[0].weight.item() == pytest.approx(0.9 * 2 / 11 + 2.0 * 9 / 11)
    for _ in range(20):  # (1 + t) / (10 + t) passes 0.5 at t = 8: from then on the decay is 0.5
        average.update()
    before = average.model[0].weight.item()
    set_weight(trained, 4.0)
    average.update()
    assert average.model[0].weight.item() == pytest.approx(0.5 * before + 0.5 * 4.0)


def test_float_buffers_are_averaged_and_integer_buffers_copied():
    trained = net()
    average = WeightAverage(trained, decay=0.5)
    trained.train()
    trained(torch.full((4, 1), 3.0) + torch.arange(4.0)[:, None])  # one batch: BatchNorm's statistics move
    average.update()
    bn, averaged_bn = trained[1], average.model[1]
    assert averaged_bn.running_mean.item() == pytest.approx(0.1 * 0.0 + 0.9 * bn.running_mean.item())
    assert averaged_bn.num_batches_tracked.item() == bn.num_batches_tracked.item() == 1


def test_the_average_is_a_copy_training_does_not_touch():
    trained = net()
    average = WeightAverage(trained, decay=0.9)
    assert average.model is not trained
    set_weight(trained, 5.0)
    assert average.model[0].weight.item() != 5.0
