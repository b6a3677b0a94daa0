"""The augmented view: off means the image itself; an erased square is one square of the right side per image."""

import pytest
import torch

from aesweep.augment import BatchAugment


@pytest.fixture
def ones() -> torch.Tensor:
    return torch.ones(64, 1, 28, 28)


def test_with_every_knob_at_zero_the_view_is_the_image(ones):
    augment = BatchAugment()
    assert not augment.active
    assert torch.equal(augment(ones), ones)


@pytest.mark.parametrize("erase, side", [(0.3, 8), (0.5, 14), (0.01, 1)])
def test_erase_sets_one_square_of_that_side_to_zero_in_each_image_and_leaves_the_rest(ones, erase, side):
    torch.manual_seed(0)
    view = BatchAugment(erase=erase)(ones)
    zero = view[:, 0] == 0
    assert (zero.sum(dim=(1, 2)) == side * side).all()
    rows, cols = zero.any(dim=2), zero.any(dim=1)  # which rows / columns of each image hold an erased pixel
    assert (rows.sum(dim=1) == side).all() and (cols.sum(dim=1) == side).all()  # one square, not scattered pixels
    assert torch.equal(view[~zero.unsqueeze(1)], ones[~zero.unsqueeze(1)])
    if side > 1:  # the squares are placed at random: not all in the same place
        assert len({tuple(r.nonzero().flatten().tolist()) for r in rows}) > 1


def test_erase_is_active_on_its_own_and_does_not_change_what_the_other_knobs_draw():
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert BatchAugment(erase=0.2).active
    torch.manual_seed(3)
    warped = BatchAugment(rotation=20.0)(images)
    torch.manual_seed(3)
    warped_and_erased = BatchAugment(rotation=20.0, erase=0.2)(images)
    kept = warped_and_erased != 0
    assert torch.equal(warped_and_erased[kept], warped[kept])  # the same rotation, then a square erased


def test_erase_aspect_keeps_the_area_and_makes_the_rectangle_wide_and_flat(ones):
    torch.manual_seed(0)
    zero = BatchAugment(erase=0.3, erase_aspect=9.0)(ones)[:, 0] == 0  # a square of 8.4 px: 2.8 x 25.2 -> 3 x 25
    assert (zero.any(dim=2).sum(dim=1) == 3).all() and (zero.any(dim=1).sum(dim=1) == 25).all()
