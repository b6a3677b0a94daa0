"""Scoring of cluster assignments against digit labels.

The autoencoder never sees a label. Its bottleneck is turned into a cluster id per image by a
*readout* (the blog's "most active unit", or k-means), and clusters are then scored against the
true digits. The headline number, ``mapped_acc``, follows the blog: each cluster is mapped
to the digit it holds most often. Unlike the blog, which fitted that mapping on the test set it
then scored, the mapping here is fitted on the training ("fit") split and only *applied* to the
split being scored, so the number is an honest held-out accuracy.

Everything here is plain numpy / SciPy / scikit-learn so it can be tested, and recomputed from
the confusion matrices in ``metrics.json``, without torch.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


UNMAPPED = -1
"""Mapping value of a cluster that has no digit; it never equals a label, so its images count wrong."""

READOUTS = ("argmax", "kmeans")


def _as_ids(values: ArrayLike, name: str, upper: int) -> NDArray[np.int64]:
    """1-D int64 ids, each in [0, upper); a bad id is a bug upstream, so fail loudly."""
    ids = np.asarray(values)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    if ids.size and (ids.min() < 0 or ids.max() >= upper):
        raise ValueError(f"{name} must lie in [0, {upper}), got range [{ids.min()}, {ids.max()}]")
    return ids


def _check_same_length(clusters: NDArray, labels: NDArray) -> None:
    if clusters.shape != labels.shape:
        raise ValueError(f"clusters and labels differ in length: {clusters.shape[0]} vs {labels.shape[0]}")


def confusion_matrix(
    clusters: ArrayLike, labels: ArrayLike, n_clusters: int, n_classes: int = 10
) -> NDArray[np.int64]:
    """Count images per (cluster, digit): an int64 array [n_clusters, n_classes].

    Rows are cluster ids and columns are digits, so row ``c`` is what cluster ``c`` holds. Every
    cluster gets a row even when no image landed in it, which keeps matrices from different
    splits the same shape and lets the mapping be fitted on one and applied to another.
    (The blog's plot is the transpose: digit rows, neuron columns.)
    """
    clusters = _as_ids(clusters, "clusters", n_clusters)
    labels = _as_ids(labels, "labels", n_classes)
    _check_same_length(clusters, labels)
    flat = np.bincount(clusters * n_classes + labels, minlength=n_clusters * n_classes)
    return flat.reshape(n_clusters, n_classes).astype(np.int64, copy=False)


def fit_cluster_to_label_map(fit_confusion: ArrayLike) -> NDArray[np.int64]:
    """The blog's mapping: each cluster -> the digit it holds most often in the fit split.

    Returns int64 [n_clusters]. Several clusters may map to the same digit (that is the blog's
    rule, and why it can beat a one-to-one matching when there are more clusters than digits).
    A cluster that is empty in the fit split has no evidence for any digit and maps to
    ``UNMAPPED`` (-1): images that land in it in another split are counted wrong rather than
    given a guessed digit. Ties go to the lowest digit (``np.argmax`` keeps the first maximum).
    """
    counts = np.asarray(fit_confusion)
    if counts.ndim != 2:
        raise ValueError(f"fit_confusion must be 2-D [clusters, digits], got shape {counts.shape}")
    mapping = counts.argmax(axis=1).astype(np.int64)
    mapping[counts.sum(axis=1) == 0] = UNMAPPED
    return mapping


def fit_one_to_one_map(fit_confusion: ArrayLike) -> NDArray[np.int64]:
    """One-to-one cluster -> digit matching that maximises the matched count in the fit split.

    This is the usual "Hungarian" clustering accuracy (SciPy's ``linear_sum_assignment``).
    Returns int64 [n_clusters]. With more clusters than digits the clusters left over get
    ``UNMAPPED`` (-1); with fewer, some digits get no cluster. A pair whose fit count is zero is
    also left ``UNMAPPED``: the solver pairs it arbitrarily (it adds nothing to the objective),
    and an arbitrary pair must not earn credit on another split. On the split the matching was
    fitted on this changes nothing, since such a pair matches no image there.
    """
    counts = np.asarray(fit_confusion)
    if counts.ndim != 2:
        raise ValueError(f"fit_confusion must be 2-D [clusters, digits], got shape {counts.shape}")
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(counts.shape[0], UNMAPPED, dtype=np.int64)
    evidenced = counts[rows, cols] > 0
    mapping[rows[evidenced]] = cols[evidenced]
    return mapping


def mapped_accuracy(clusters: ArrayLike, labels: ArrayLike, mapping: ArrayLike) -> float:
    """Fraction of images whose cluster's mapped digit equals their label.

    ``mapping[c]`` is the digit of cluster ``c`` (from either fit function); ``UNMAPPED`` never
    equals a label, so images in an unmapped cluster count wrong.
    """
    mapping = np.asarray(mapping, dtype=np.int64)
    if mapping.ndim != 1:
        raise ValueError(f"mapping must be 1-D, got shape {mapping.shape}")
    clusters = _as_ids(clusters, "clusters", mapping.shape[0])
    labels = np.asarray(labels, dtype=np.int64)
    _check_same_length(clusters, labels)
    if clusters.size == 0:
        raise ValueError("accuracy of an empty split is undefined")
    return float(np.mean(mapping[clusters] == labels))


def score_assignments(
    clusters: ArrayLike,
    labels: ArrayLike,
    majority_map: ArrayLike,
    one_to_one_map: ArrayLike,
    n_clusters: int,
) -> dict[str, float | int]:
    """All cluster-quality numbers for one split, given mappings fitted on the fit split.

    Keys: ``mapped_acc`` (the blog's many-to-one mapping), ``hungarian_acc`` (one-to-one mapping),
    ``nmi`` and ``ari`` (scikit-learn; they need no mapping, so they are the same whichever split
    a mapping came from), ``clusters_used`` (distinct clusters that occur in *this* split, which
    exposes collapse onto a few units). Values are plain Python ``float``/``int`` for JSON.
    """
    clusters = _as_ids(clusters, "clusters", n_clusters)
    labels = np.asarray(labels, dtype=np.int64)
    _check_same_length(clusters, labels)
    for name, mapping in (("majority_map", majority_map), ("one_to_one_map", one_to_one_map)):
        if np.shape(mapping) != (n_clusters,):
            raise ValueError(f"{name} must have shape ({n_clusters},), got {np.shape(mapping)}")
    return {
        "mapped_acc": mapped_accuracy(clusters, labels, majority_map),
        "hungarian_acc": mapped_accuracy(clusters, labels, one_to_one_map),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "clusters_used": int(np.unique(clusters).size),
    }


def cluster_entropy(clusters: ArrayLike, n_clusters: int) -> float:
    """Entropy (nats) of the share of images in each cluster: log(n_clusters) when the clusters are equal in
    size, lower as some grow at the others' expense. It needs no label."""
    return float(entropy(np.bincount(_as_ids(clusters, "clusters", n_clusters), minlength=n_clusters)))


class Readout(Protocol):
    """Turns bottleneck activations z [N, width] into cluster ids [N].

    ``fit`` sees only the fit split; ``assign`` is then applied unchanged to every split, so no
    split's clustering is tuned on the data it is scored on.
    """

    def fit(self, z_fit: NDArray[np.floating]) -> "Readout": ...

    def assign(self, z: NDArray[np.floating]) -> NDArray[np.int64]: ...


def _as_activations(z: ArrayLike) -> NDArray[np.floating]:
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"activations must be 2-D [N, width], got shape {z.shape}")
    return z


class ArgmaxReadout:
    """The blog's rule: an image belongs to its most active bottleneck unit.

    Nothing to fit. Ties go to the lowest unit (``np.argmax``). Unit ids must fit in
    ``n_clusters``, i.e. width <= n_clusters; the config check (width == eval.n_clusters unless
    over-clustering is allowed) is the train loop's job, this only guards the contract.
    """

    def __init__(self, n_clusters: int):
        self.n_clusters = n_clusters

    def fit(self, z_fit: ArrayLike) -> "ArgmaxReadout":
        return self

    def assign(self, z: ArrayLike) -> NDArray[np.int64]:
        z = _as_activations(z)
        if z.shape[1] > self.n_clusters:
            raise ValueError(
                f"argmax readout over {z.shape[1]} units gives ids beyond n_clusters={self.n_clusters}"
            )
        return z.argmax(axis=1).astype(np.int64)


class KMeansReadout:
    """k-means with k = n_clusters on the bottleneck, for any bottleneck width.

    Centroids are fitted on the fit split only and each other split is assigned to its nearest
    centroid (``KMeans.predict``). ``seed`` fixes the initialisation, so a run is reproducible.
    """

    def __init__(self, n_clusters: int, seed: int, n_init: int = 3):
        self.n_clusters, self.seed, self.n_init = n_clusters, seed, n_init
        self._kmeans: KMeans | None = None

    def fit(self, z_fit: ArrayLike) -> "KMeansReadout":
        kmeans = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.seed)
        self._kmeans = kmeans.fit(_as_activations(z_fit))
        return self

    def assign(self, z: ArrayLike) -> NDArray[np.int64]:
        if self._kmeans is None:
            raise RuntimeError("KMeansReadout.assign called before fit: fit it on the fit split first")
        return self._kmeans.predict(_as_activations(z)).astype(np.int64)


def make_readout(
    kind: str, n_clusters: int, seed: int, kmeans_n_init: int = 3
) -> ArgmaxReadout | KMeansReadout:
    """Build the readout named by ``eval.readout`` ("argmax" or "kmeans")."""
    if kind == "argmax":
        return ArgmaxReadout(n_clusters)
    if kind == "kmeans":
        return KMeansReadout(n_clusters, seed=seed, n_init=kmeans_n_init)
    raise ValueError(f"unknown readout {kind!r}: one of {', '.join(READOUTS)}")
