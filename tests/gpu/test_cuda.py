"""The CUDA-only paths: the whole training step captured as a CUDA graph must train exactly as the eager loop.

Skipped on machines without a CUDA GPU (the test machines); run on a GPU with `pytest tests/gpu/test_cuda.py`.
"""

from __future__ import annotations

import pytest
import torch
from helpers import compose_config

from aesweep.data import load_splits
from aesweep.errors import ConfigError
from aesweep.step import cuda_graph_blocker
from aesweep.train import build_training, run, seed_everything, train_one_epoch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")
# 700 images at batch 128: five full batches (three eager warm-up steps, the capture, one replay) and a
# partial batch of 60 that runs eagerly; two epochs, so later epochs replay from their first batch.
SUBSET, BATCH, EPOCHS = 700, 128, 2


def trained(cuda_graph: bool, *overrides: str):
    """Parameters, per-epoch loss means and lr after EPOCHS epochs, with the step graphed or eager."""
    cfg = compose_config("device=cuda", f"data.subset={SUBSET}", f"trainer.batch_size={BATCH}",
                         f"trainer.epochs={EPOCHS}", f"trainer.cuda_graph={str(cuda_graph).lower()}", *overrides)
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data, CUDA)
    step = build_training(cfg, splits, CUDA)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True  # the same kernels both times
    # Adam's capturable update rounds differently from its default one; compare the graph, not that
    step.make_optimizer_capturable()
    generator = torch.Generator().manual_seed(cfg.seed)
    losses = [train_one_epoch(step, splits, cfg, epoch, generator, lambda it, desc: it) for epoch in range(EPOCHS)]
    assert (step.graph is not None) == cuda_graph
    params = torch.cat([p.detach().float().flatten() for p in step.model.parameters()])
    return params, losses, step.lr


@needs_cuda
@pytest.mark.parametrize("overrides", [
    pytest.param([], id="blog-recipe-sgd"),
    pytest.param(["model=conv", "optimizer=adam", "scheduler=cosine", "trainer.grad_clip=1.0"], id="adam-cosine-bn"),
])
def test_graphed_step_trains_like_the_eager_step(overrides):
    graph_params, graph_losses, graph_lr = trained(True, *overrides)
    eager_params, eager_losses, eager_lr = trained(False, *overrides)
    relative = (graph_params - eager_params).norm() / eager_params.norm()
    assert relative < 1e-4
    assert graph_lr == pytest.approx(eager_lr, rel=1e-6)  # the per-step schedule reached the graph
    for graphed, eager in zip(graph_losses, eager_losses):
        assert graphed.keys() == eager.keys()
        for name in eager:
            assert graphed[name] == pytest.approx(eager[name], rel=1e-4)


@needs_cuda
def test_graphed_iic_with_augmentation_and_bf16_trains_and_scores(tmp_path):
    """Random augmentation inside the graph draws fresh numbers on every replay; the run ends completed."""
    cfg = compose_config("device=cuda", "model=conv", "optimizer=adam", "loss=iic", "loss.warmup_epochs=1",
                         "data.subset=2000", "trainer.epochs=2", "trainer.batch_size=256", "trainer.amp=true",
                         "trainer.cuda_graph=true")
    result = run(cfg, tmp_path)
    assert result["status"] == "completed"
    assert result["device"] == "cuda"
    assert 0.1 <= result["test"]["mapped_acc"] <= 1.0


@needs_cuda
def test_sgd_with_a_per_step_schedule_cannot_be_graphed():
    cfg = compose_config("device=cuda", "data.subset=256", "scheduler=cosine", "trainer.cuda_graph=true")
    splits = load_splits(cfg.data, CUDA)
    with pytest.raises(ConfigError, match="trainer.cuda_graph"):
        build_training(cfg, splits, CUDA)


def test_cuda_graph_true_without_a_gpu_is_a_config_error(mnist_root):
    cfg = compose_config("device=cpu", "data.subset=256", "trainer.cuda_graph=true")
    splits = load_splits(cfg.data, torch.device("cpu"))
    with pytest.raises(ConfigError, match="trainer.cuda_graph.*device=cuda"):
        build_training(cfg, splits, torch.device("cpu"))


@needs_cuda
def test_compiled_model_inside_the_graph_trains_like_the_eager_step():
    """compile_mode=default: inductor's fused kernels, captured with the rest of the step and replayed."""
    graph_params, graph_losses, _ = trained(True, "trainer.compile=true", "trainer.compile_mode=default")
    eager_params, eager_losses, _ = trained(False)
    assert (graph_params - eager_params).norm() / eager_params.norm() < 1e-3  # fused kernels round differently
    assert graph_losses[-1]["loss"] == pytest.approx(eager_losses[-1]["loss"], rel=1e-3)


@pytest.mark.parametrize(("compile_mode", "graphed"), [
    ("default", True), ("max-autotune-no-cudagraphs", True), ("reduce-overhead", False), ("max-autotune", False),
])
def test_compile_goes_inside_the_whole_step_graph_unless_it_captures_graphs_itself(compile_mode, graphed):
    cfg = compose_config("device=cpu", "trainer.compile=true", f"trainer.compile_mode={compile_mode}")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    blocker = cuda_graph_blocker(cfg, optimizer, CUDA)  # only the device's type is read: no GPU needed
    assert (blocker is None) == graphed
    if not graphed:
        assert f"compile_mode={compile_mode}" in blocker
