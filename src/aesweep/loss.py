"""The training objective: a weighted sum of reconstruction and clustering terms.

Reconstruction alone does not ask the bottleneck for clusters (with Adam it collapses to one unit),
so the clustering terms below are what move mapped accuracy:
- entropy: mean per-image entropy of the soft assignment, minimised -> confident assignments;
- balance: log(K) - entropy of the batch-mean assignment, minimised -> every cluster used
  (together with `entropy` this is information maximisation, as in IMSAT / RIM);
- consistency: cross-entropy of the augmented view's assignment against the clean view's (stop-gradient);
- iic: IIC (Ji et al., 2019) - minus the mutual information between the assignments of the clean and
  the augmented view, from their K x K joint distribution over the batch; `iic_lambda` > 1 weighs the
  marginals' entropy up, which guards against degenerate solutions;
- overcluster: the same IIC term on the model's over-clustering head (`model.overcluster`, wider than the
  digits), as IIC trains its auxiliary head: the features learn to separate the styles within a digit,
  which the 10-wide heads then group. It is added once (it is shared by the heads), never per head.
Clustering terms ramp in linearly over `warmup_epochs`, so reconstruction can shape the code first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aesweep.augment import BatchAugment
from aesweep.config import CLUSTERING_TERMS, has_clustering_terms
from aesweep.model import Autoencoder

EPS = 1e-8


def entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(EPS))).sum(dim=-1)


def iic_loss(p: torch.Tensor, q: torch.Tensor, lamb: float = 1.0) -> torch.Tensor:
    """-I(z; z') for paired soft assignments p, q [B, K]; lamb weighs the marginal terms."""
    joint = (p.unsqueeze(2) * q.unsqueeze(1)).mean(dim=0)
    joint = ((joint + joint.t()) / 2).clamp_min(EPS)
    p_i = joint.sum(dim=1, keepdim=True)
    p_j = joint.sum(dim=0, keepdim=True)
    return -(joint * (torch.log(joint) - lamb * torch.log(p_i) - lamb * torch.log(p_j))).sum()


class CompositeLoss:
    """Computes every enabled term for one batch; returns the weighted total and each term's value."""

    def __init__(self, loss_cfg, augment: BatchAugment):
        self.cfg = loss_cfg
        self.augment = augment
        self.needs_view = loss_cfg.consistency_weight > 0 or loss_cfg.iic_weight > 0  # or an over-clustering head

    def ramp(self, epoch: int) -> float:
        """Factor on the clustering terms: 0 in the first epoch of a warm-up, 1 once it is over."""
        warmup = self.cfg.warmup_epochs
        return 1.0 if warmup <= 0 else min(1.0, epoch / warmup)

    def __call__(
        self, model: Autoencoder, x: torch.Tensor, ramp: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted total and each term for batch x; `ramp` (see `ramp()`) scales the clustering terms.

        `ramp` may be a 0-d device tensor: a captured CUDA graph then sees each epoch's value. With several
        heads each clustering term is computed per head; the total takes their mean, the terms report it, and
        `head<h>` is head h's weighted clustering loss, by which the run picks the head it scores.
        """
        cfg = self.cfg
        logits, _code, recon, overcluster = model.parts(x)
        terms: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=x.device)
        if cfg.recon_weight > 0:
            if cfg.recon == "bce":
                terms["recon"] = F.binary_cross_entropy(recon.float().clamp(EPS, 1 - EPS), x)
            else:
                terms["recon"] = F.mse_loss(recon.float(), x)
            total = total + cfg.recon_weight * terms["recon"]

        overclustering = overcluster is not None and cfg.overcluster_weight > 0
        if not (has_clustering_terms(cfg) or overclustering):
            return total, terms
        p = model.cluster_probs(logits.float())  # [batch, heads, clusters]
        per_head: dict[str, torch.Tensor] = {}  # each term per head, [heads]
        if cfg.entropy_weight > 0:
            per_head["entropy"] = entropy(p).mean(dim=0)
        if cfg.balance_weight > 0:
            per_head["balance"] = math.log(p.shape[-1]) - entropy(p.mean(dim=0))
        if self.needs_view or overclustering:  # each view term is its mean over `views` augmented copies
            per_view: dict[str, list[torch.Tensor]] = {"consistency": [], "iic": [], "overcluster": []}
            for _ in range(cfg.views):
                view = self.augment(x) if self.augment.active else x
                view_logits, view_overcluster = model.all_logits(view)
                q = model.cluster_probs(view_logits.float())
                if cfg.consistency_weight > 0:
                    per_view["consistency"].append(-(p.detach() * torch.log(q.clamp_min(EPS))).sum(dim=-1).mean(dim=0))
                if cfg.iic_weight > 0:
                    per_view["iic"].append(
                        torch.stack([iic_loss(p[:, h], q[:, h], cfg.iic_lambda) for h in range(p.shape[1])]))
                if overclustering:
                    per_view["overcluster"].append(iic_loss(model.cluster_probs(overcluster.float()),
                                                            model.cluster_probs(view_overcluster.float()), cfg.iic_lambda))
            for name in ("consistency", "iic"):
                if per_view[name]:
                    per_head[name] = torch.stack(per_view[name]).mean(dim=0)
            if overclustering:
                terms["overcluster"] = torch.stack(per_view["overcluster"]).mean()
        clustering = torch.zeros(p.shape[1], device=x.device)
        for name in CLUSTERING_TERMS:  # a fixed order: a set's would vary with the process's string hashing
            if name in per_head:
                terms[name] = per_head[name].mean()
                clustering = clustering + cfg[f"{name}_weight"] * per_head[name]
        if p.shape[1] > 1:
            terms.update({f"head{h}": clustering[h] for h in range(p.shape[1])})
        shared = cfg.overcluster_weight * terms["overcluster"] if overclustering else 0.0
        return total + ramp * (clustering.mean() + shared), terms
