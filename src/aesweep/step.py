"""The training step: forward, loss, backward, clip, optimizer and lr schedule on one batch, and the speed
switches that change how it runs but not what it computes.

Each switch is one config key of `trainer` and earns its place by a measured gain on runs users start
(docs/performance.md): the whole step as one CUDA graph and cuDNN's algorithm search on a GPU,
channels-last tensors on a CPU. `trainer.compile` and `trainer.amp` are PyTorch's own switches, off
unless asked for (amp is on by itself only where the CPU computes bf16 natively and the loss is
reconstruction alone).
"""

from __future__ import annotations

import copy
import logging
from contextlib import nullcontext

import torch
from omegaconf import DictConfig

from aesweep.config import has_clustering_terms
from aesweep.errors import ConfigError
from aesweep.loss import CompositeLoss
from aesweep.model import Autoencoder

log = logging.getLogger(__name__)


def apply_speed_switches(model: Autoencoder, trainer_cfg, device: torch.device) -> Autoencoder:
    """The model in the memory format and compiled form the switches ask for; cuDNN's search on CUDA."""
    if channels_last(trainer_cfg, device):
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        # every batch has the same shape, so timing cuDNN's algorithms once per shape pays for itself
        torch.backends.cudnn.benchmark = trainer_cfg.cudnn_benchmark in ("auto", True)
    if trainer_cfg.compile:
        # The loss calls model.parts(x), never model(x): compiling the module would compile nothing
        # the loop runs, so compile the function the loss calls.
        model.parts = torch.compile(model.parts, mode=trainer_cfg.compile_mode)
    return model


def channels_last(trainer_cfg, device: torch.device) -> bool:
    """trainer.channels_last=auto: on for CPUs, where oneDNN's convolutions (the transposed ones above all)
    run a training step 1.2-1.5x faster on channels-last tensors; off elsewhere until measured there."""
    if trainer_cfg.channels_last == "auto":
        return device.type == "cpu"
    return bool(trainer_cfg.channels_last)


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def amp_enabled(cfg: DictConfig, device: torch.device) -> bool:
    """trainer.amp: bf16 autocast of the training step (the bottleneck's logits stay float32).

    auto = on for CPUs that compute in bf16 natively (AVX512-BF16, AMX) when the objective is
    reconstruction alone: there it made the blog model's epochs ~1.4x faster with the same
    val.mapped_acc over seeds. With clustering terms it stays off: over 10 seeds of an IIC recipe bf16
    scored 1.9 points lower on average (within the seeds' spread, but not shown harmless). Off on CUDA,
    where it gained nothing on the H100. Asking for it where bf16 would be emulated (older CPUs: several
    times slower than float32) or is not wired up (mps) is refused. (README, Performance.)
    """
    wanted = cfg.trainer.amp
    if wanted is False:
        return False
    if wanted == "auto":
        return device.type == "cpu" and native_bf16_cpu() and not has_clustering_terms(cfg.loss)
    if not (device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())):
        why = "it has no native bf16 (AVX512-BF16 or AMX)" if device.type == "cpu" else "bf16 autocast is not used there"
        raise ConfigError("trainer.amp", True, f"auto or false on {device.type}: {why}")
    return True


# Optimizers whose update reads a device-tensor lr inside a captured graph (capturable=True), so a
# per-step lr schedule survives graph replay; any other optimizer is graphed only at a constant lr.
TENSOR_LR_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


# torch.compile modes that capture CUDA graphs themselves; a graph cannot be captured inside our own.
# The others (default, max-autotune-no-cudagraphs) produce fused kernels that the whole-step graph replays.
COMPILE_MODES_WITH_OWN_GRAPHS = ("reduce-overhead", "max-autotune")


def cuda_graph_blocker(cfg: DictConfig, optimizer: torch.optim.Optimizer, device: torch.device) -> str | None:
    """Why the training step cannot be captured as a CUDA graph here, or None if it can."""
    if device.type != "cuda":
        return f"device is {device.type}: CUDA graphs need device=cuda"
    if cfg.trainer.compile and cfg.trainer.compile_mode in COMPILE_MODES_WITH_OWN_GRAPHS:
        return (f"trainer.compile_mode={cfg.trainer.compile_mode} replays torch.compile's own CUDA graphs "
                "(compile_mode=default or max-autotune-no-cudagraphs go inside the whole-step graph)")
    constant_lr = cfg.scheduler.name == "none" and not cfg.scheduler.warmup_epochs
    if not constant_lr and not isinstance(optimizer, TENSOR_LR_OPTIMIZERS):
        return (f"a per-step lr schedule with {type(optimizer).__name__} (only Adam and AdamW read their lr "
                "from the device; use scheduler=none without warm-up, or optimizer=adam|adamw)")
    return None


class WeightAverage:
    """An exponential moving average of the model's weights and float buffers (BatchNorm's statistics), the
    weights that are scored when trainer.ema_decay is set.

    Why: the weights of the last step carry the noise of its last batches; their average over the last hundred
    or so steps maps more images to their digit's cluster (sweep=default's recipe over six seeds: +0.2 points of
    test mapped accuracy, five seeds up, outputs/reference/recipe-ingredients-cpu/ema) without changing what
    training does. The decay warms
    up as min(decay, (1 + t) / (10 + t)) after t updates, so the average is not dominated by the
    initialisation in the first epochs (which the pruner and trainer.n_init's choice judge). Written here
    rather than with torch's AveragedModel, which would average the integer buffers (the selected head) and
    has no warm-up without reading its device-side count on every step.
    """

    def __init__(self, model: Autoencoder, decay: float):
        self.model = copy.deepcopy(model)
        # a compiled `parts` is bound to the trained model: the average runs its own, uncompiled
        vars(self.model).pop("parts", None)
        self.decay, self.updates = decay, 0
        # tensors sharing the models' storage, listed once: update() runs after every step
        averaged, trained = self.model.state_dict(), model.state_dict()
        floats = [k for k in averaged if averaged[k].is_floating_point()]
        others = [k for k in averaged if not averaged[k].is_floating_point()]
        self.averaged_floats, self.trained_floats = [averaged[k] for k in floats], [trained[k] for k in floats]
        self.averaged_others, self.trained_others = [averaged[k] for k in others], [trained[k] for k in others]

    def update(self) -> None:
        """Move the average towards the trained weights after an optimizer step."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        with torch.no_grad():
            torch._foreach_lerp_(self.averaged_floats, self.trained_floats, 1.0 - decay)
        self.copy_others()

    def copy_others(self) -> None:
        """Integer buffers (the selected head, BatchNorm's batch count) are the trained model's."""
        with torch.no_grad():
            torch._foreach_copy_(self.averaged_others, self.trained_others)


class TrainingStep:
    """One optimisation step (forward, loss, backward, clip, optimizer, lr schedule) on one batch.

    On CUDA (trainer.cuda_graph=auto) the step is captured once as a CUDA graph and then replayed with
    a single launch: the blog model at batch 128 is launch-bound on a GPU (3.2 ms per eager step on an
    H100, for 2.4 GFLOP), and replay made its epochs 3.8x faster there. What a replay needs
    to see change lives in device tensors the graph reads: the batch (copied into `static_x`), the
    clustering-term ramp and, for Adam/AdamW, the lr. Steps of another batch size (the epoch's last,
    partial batch) run eagerly on the same parameters, gradients and optimizer state.
    """

    WARMUP_STEPS = 3  # eager steps on a side stream before capture: cuDNN/cuBLAS choose kernels, optimizer state exists

    def __init__(self, model: Autoencoder, optimizer: torch.optim.Optimizer, schedule, loss_fn: CompositeLoss,
                 cfg: DictConfig, device: torch.device):
        self.model, self.optimizer, self.schedule, self.loss_fn = model, optimizer, schedule, loss_fn
        self.cfg, self.device = cfg, device
        self.amp = amp_enabled(cfg, device)
        self.ramp = torch.ones((), device=device)
        self.sums: dict[str, torch.Tensor] = {}  # running sum of each loss term over the epoch, on the device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.warm_steps = 0
        decay = cfg.trainer.ema_decay
        self.average = WeightAverage(model, decay) if decay is not None else None
        blocker = cuda_graph_blocker(cfg, optimizer, device)
        wanted = cfg.trainer.cuda_graph
        if wanted is True and blocker:
            raise ConfigError("trainer.cuda_graph", True, f"auto or false here: {blocker}")
        self.graphed = wanted is True or (wanted == "auto" and blocker is None)
        if wanted == "auto" and blocker and device.type == "cuda":
            log.info("training step runs eagerly, not as a CUDA graph: %s", blocker)
        if self.graphed:
            self.make_optimizer_capturable()

    def make_optimizer_capturable(self) -> None:
        """Step count (and, for Adam/AdamW, the lr) on the device, so the optimizer step needs no host sync."""
        for group in self.optimizer.param_groups:
            if isinstance(self.optimizer, TENSOR_LR_OPTIMIZERS):
                group["capturable"] = True
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)  # the schedule fill_()s it
            elif "capturable" in group:
                group["capturable"] = True

    @property
    def scored_model(self) -> Autoencoder:
        """The weights that are scored, pictured and saved: their moving average with trainer.ema_decay,
        else the trained ones."""
        if self.average is None:
            return self.model
        self.average.copy_others()  # the head chosen after the epoch's last step
        return self.average.model

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def start_epoch(self, epoch: int) -> None:
        self.ramp.fill_(self.loss_fn.ramp(epoch))
        for total in self.sums.values():
            total.zero_()

    def epoch_means(self, steps: int) -> dict[str, float]:
        return {name: float(total) / steps for name, total in self.sums.items()}

    def __call__(self, x: torch.Tensor) -> None:
        if not self.graphed or x.shape[0] != self.cfg.trainer.batch_size:
            # after a capture, gradients are zeroed in place: the graph reads and writes those same tensors
            self.optimizer.zero_grad(set_to_none=self.graph is None)
            self._forward_backward_update(x)
        elif self.graph is not None:
            self.static_x.copy_(x)
            self.graph.replay()
        elif self.warm_steps < self.WARMUP_STEPS:
            self._side_stream_step(x)
        else:
            self._capture(x)
        if self.average is not None:
            self.average.update()
        self.schedule.step()

    def _forward_backward_update(self, x: torch.Tensor) -> None:
        # no cast cache inside a CUDA graph: the cached bf16 weights would be the capture's, not the updated ones
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.graphed)
                    if self.amp else nullcontext())
        with autocast:
            loss, terms = self.loss_fn(self.model, x, self.ramp)
        loss.backward()
        if self.cfg.trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip)
        self.optimizer.step()
        # accumulate on the device: one host sync per epoch, not per step (in-place, so a graph can do it)
        for name, value in {"loss": loss, **{f"loss.{k}": v for k, v in terms.items()}}.items():
            if name not in self.sums:
                self.sums[name] = torch.zeros((), device=self.device)
            self.sums[name].add_(value.detach().float())

    def _side_stream_step(self, x: torch.Tensor) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.optimizer.zero_grad(set_to_none=True)
            self._forward_backward_update(x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.warm_steps += 1

    def _capture(self, x: torch.Tensor) -> None:
        self.static_x = x.clone()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are then allocated inside the graph's memory
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._forward_backward_update(self.static_x)
        self.graph.replay()  # capturing records the step without running it: run it on this batch now
