"""Scoring of cluster assignments: every metric checked against a brute-force reference.

The references below are deliberately naive (python loops, exhaustive search) so that they are
obviously right; the module under test must agree with them on hand-made label vectors.
"""

import itertools
import math

import numpy as np
import pytest

from aesweep.metrics import (
    UNMAPPED,
    cluster_entropy,
    confusion_matrix,
    fit_cluster_to_label_map,
    fit_one_to_one_map,
    make_readout,
    mapped_accuracy,
    score_assignments,
)

# ---------------------------------------------------------------- brute-force references


def ref_confusion(clusters, labels, n_clusters, n_classes=10):
    table = [[0] * n_classes for _ in range(n_clusters)]
    for c, y in zip(clusters, labels):
        table[c][y] += 1
    return table


def ref_majority_map(table):
    """Each cluster -> its most frequent digit, lowest digit on ties, -1 when empty."""
    mapping = []
    for row in table:
        best, best_count = -1, 0
        for digit, count in enumerate(row):
            if count > best_count:
                best, best_count = digit, count
        mapping.append(best)
    return mapping


def ref_accuracy(clusters, labels, mapping):
    right = 0
    for c, y in zip(clusters, labels):
        if mapping[c] == y:
            right += 1
    return right / len(labels)


def ref_best_one_to_one(table):
    """Exhaustive search over every one-to-one (partial) cluster -> digit map: (count, map)."""
    n_clusters, n_classes = len(table), len(table[0])
    best_count, best_map = -1, None
    for mapping in itertools.product(range(-1, n_classes), repeat=n_clusters):
        used = [d for d in mapping if d != -1]
        if len(used) != len(set(used)):
            continue
        count = sum(table[c][d] for c, d in enumerate(mapping) if d != -1)
        if count > best_count:
            best_count, best_map = count, mapping
    return best_count, list(best_map)


def ref_nmi(labels, clusters):
    """Mutual information over the arithmetic mean of the two entropies (scikit-learn's default)."""
    n = len(labels)

    def entropy(values):
        return -sum((values.count(v) / n) * math.log(values.count(v) / n) for v in set(values))

    labels, clusters = list(labels), list(clusters)
    pairs = list(zip(labels, clusters))
    mi = 0.0
    for y, c in set(pairs):
        p_joint = pairs.count((y, c)) / n
        mi += p_joint * math.log(p_joint / ((labels.count(y) / n) * (clusters.count(c) / n)))
    h_labels, h_clusters = entropy(labels), entropy(clusters)
    if h_labels == 0 and h_clusters == 0:
        return 1.0
    return mi / ((h_labels + h_clusters) / 2)


def ref_ari(labels, clusters):
    """Adjusted Rand index from pair counts over every pair of images (Hubert & Arabie)."""
    same_both = same_label_only = same_cluster_only = differ_both = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_label, same_cluster = labels[i] == labels[j], clusters[i] == clusters[j]
        if same_label and same_cluster:
            same_both += 1
        elif same_label:
            same_label_only += 1
        elif same_cluster:
            same_cluster_only += 1
        else:
            differ_both += 1
    a, b, c, d = same_both, same_label_only, same_cluster_only, differ_both
    return 2 * (a * d - b * c) / ((a + b) * (b + d) + (a + c) * (c + d))


def fit_and_score(fit_clusters, fit_labels, clusters, labels, n_clusters):
    table = confusion_matrix(fit_clusters, fit_labels, n_clusters)
    return score_assignments(
        clusters, labels, fit_cluster_to_label_map(table), fit_one_to_one_map(table), n_clusters
    )


def noisy_clusters(rng, labels, n_clusters, noise):
    """Cluster ids that mostly follow the label through a fixed shuffle, with some random ones."""
    shuffle = rng.permutation(n_clusters)
    clusters = shuffle[labels % n_clusters]
    flip = rng.random(labels.shape[0]) < noise
    clusters[flip] = rng.integers(0, n_clusters, flip.sum())
    return clusters


# ---------------------------------------------------------------- confusion matrix


def test_confusion_matrix_rows_are_clusters_and_columns_are_digits():
    table = confusion_matrix([0, 0, 1, 2], [3, 3, 5, 9], n_clusters=3)
    assert table.shape == (3, 10)
    assert table.dtype == np.int64
    assert table[0, 3] == 2 and table[1, 5] == 1 and table[2, 9] == 1
    assert table.sum() == 4


def test_confusion_matrix_keeps_a_zero_row_for_every_unused_cluster():
    table = confusion_matrix([1, 1], [4, 2], n_clusters=4)
    assert table.shape == (4, 10)
    assert table[[0, 2, 3]].sum() == 0
    assert table[1].tolist() == [0, 0, 1, 0, 1, 0, 0, 0, 0, 0]


def test_confusion_matrix_matches_loop_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    clusters = rng.integers(0, 7, 200)
    assert confusion_matrix(clusters, labels, 7).tolist() == ref_confusion(clusters, labels, 7)


def test_confusion_matrix_rejects_cluster_id_beyond_n_clusters():
    with pytest.raises(ValueError, match=r"clusters must lie in \[0, 3\)"):
        confusion_matrix([0, 3], [1, 1], n_clusters=3)


# ---------------------------------------------------------------- mappings


def test_majority_map_sends_each_cluster_to_its_most_frequent_digit():
    clusters = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    labels = [7, 7, 1, 3, 3, 7, 0, 7, 7]
    table = confusion_matrix(clusters, labels, 3)
    assert fit_cluster_to_label_map(table).tolist() == [7, 3, 7]
    assert fit_cluster_to_label_map(table).tolist() == ref_majority_map(ref_confusion(clusters, labels, 3))


def test_majority_map_breaks_ties_towards_the_lowest_digit():
    table = confusion_matrix([0, 0, 0, 0], [8, 2, 8, 2], n_clusters=1)
    assert fit_cluster_to_label_map(table).tolist() == [2]


def test_one_to_one_map_pairs_each_digit_with_at_most_one_cluster():
    # Clusters 0 and 1 both hold mostly 5s; only one of them may have digit 5.
    clusters = [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    labels = [5, 5, 5, 6, 5, 5, 5, 5, 6, 6, 6]
    table = confusion_matrix(clusters, labels, 3)
    best_count, best_map = ref_best_one_to_one(ref_confusion(clusters, labels, 3))
    mapping = fit_one_to_one_map(table)
    assert mapping.tolist() == best_map == [-1, 5, 6]
    assert mapped_accuracy(clusters, labels, mapping) == best_count / len(labels) == (4 + 2) / 11


# ---------------------------------------------------------------- the four cases the issue names


def test_permuted_cluster_ids_score_perfectly():
    labels = np.repeat(np.arange(10), 3)
    permutation = np.array([3, 7, 0, 9, 1, 4, 8, 2, 6, 5])
    clusters = permutation[labels]
    scores = fit_and_score(clusters, labels, clusters, labels, n_clusters=10)
    assert scores == {"mapped_acc": 1.0, "hungarian_acc": 1.0, "nmi": pytest.approx(1.0),
                      "ari": pytest.approx(1.0), "clusters_used": 10}
    assert fit_cluster_to_label_map(confusion_matrix(clusters, labels, 10)).tolist() == [
        int(np.flatnonzero(permutation == c)[0]) for c in range(10)
    ]


def test_cluster_empty_in_fit_split_maps_to_minus_one_and_its_images_count_wrong():
    table = confusion_matrix([0, 0, 1, 1], [4, 4, 7, 7], n_clusters=3)
    majority, one_to_one = fit_cluster_to_label_map(table), fit_one_to_one_map(table)
    assert majority.tolist() == [4, 7, UNMAPPED]
    assert one_to_one.tolist() == [4, 7, UNMAPPED]
    # Half of the scored images land in cluster 2, which the fit split never used.
    clusters, labels = [0, 1, 2, 2], [4, 7, 5, 5]
    scores = score_assignments(clusters, labels, majority, one_to_one, n_clusters=3)
    assert scores["mapped_acc"] == ref_accuracy(clusters, labels, [4, 7, -1]) == 0.5
    assert scores["hungarian_acc"] == 0.5


def test_more_clusters_than_digits_lets_majority_mapping_beat_one_to_one():
    # Digit 0 is split over clusters 0 and 1; the majority rule may give both of them digit 0,
    # a one-to-one matching must leave one of them out.
    clusters = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    table = confusion_matrix(clusters, labels, 3)
    assert fit_cluster_to_label_map(table).tolist() == [0, 0, 1]
    assert fit_one_to_one_map(table).tolist() == [0, UNMAPPED, 1]
    by_hand_majority, by_hand_one_to_one = 10 / 10, (4 + 3) / 10
    best_count, _ = ref_best_one_to_one(ref_confusion(clusters, labels, 3))
    assert best_count / 10 == by_hand_one_to_one
    scores = fit_and_score(clusters, labels, clusters, labels, n_clusters=3)
    assert scores["mapped_acc"] == by_hand_majority
    assert scores["hungarian_acc"] == by_hand_one_to_one


def test_fewer_clusters_than_digits_leaves_some_digits_without_a_cluster():
    clusters = [0, 0, 0, 1, 1, 1]
    labels = [2, 2, 3, 4, 4, 3]
    table = confusion_matrix(clusters, labels, 2)
    assert fit_one_to_one_map(table).tolist() == [2, 4]
    assert fit_and_score(clusters, labels, clusters, labels, n_clusters=2)["hungarian_acc"] == 4 / 6


def test_one_cluster_scores_the_most_common_digit_frequency_and_zero_nmi_and_ari():
    labels = [0, 0, 0, 1, 1, 2]
    clusters = [0] * 6
    scores = fit_and_score(clusters, labels, clusters, labels, n_clusters=1)
    assert scores["mapped_acc"] == 3 / 6
    assert scores["hungarian_acc"] == 3 / 6
    assert scores["nmi"] == ref_nmi(labels, clusters) == 0.0
    assert scores["ari"] == ref_ari(labels, clusters) == 0.0
    assert scores["clusters_used"] == 1


# ---------------------------------------------------------------- honesty: fit on one split, score another


def test_mapping_is_fitted_on_the_fit_split_not_on_the_split_it_scores():
    fit_clusters, fit_labels = [0, 0, 0, 1, 1, 1], [1, 1, 2, 3, 3, 3]  # fit: cluster 0 -> 1, 1 -> 3
    clusters, labels = [0, 0, 0, 1, 1, 1], [2, 2, 1, 3, 3, 4]  # scored split: cluster 0 holds mostly 2s
    honest = fit_and_score(fit_clusters, fit_labels, clusters, labels, n_clusters=2)
    refitted = fit_and_score(clusters, labels, clusters, labels, n_clusters=2)
    assert honest["mapped_acc"] == ref_accuracy(clusters, labels, [1, 3]) == 3 / 6
    assert honest["hungarian_acc"] == 3 / 6
    # Fitting on the scored split (the blog's mistake) would have reported more.
    assert refitted["mapped_acc"] == refitted["hungarian_acc"] == 4 / 6


def test_clusters_used_counts_only_the_scored_split():
    scores = fit_and_score([0, 1, 2], [0, 1, 2], [0, 0, 2, 2], [0, 0, 2, 1], n_clusters=4)
    assert scores["clusters_used"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_scores_match_brute_force_on_noisy_random_labels(seed):
    rng = np.random.default_rng(seed)
    n_clusters = 5
    fit_labels, labels = rng.integers(0, 4, 40), rng.integers(0, 4, 30)
    fit_clusters = noisy_clusters(rng, fit_labels, n_clusters, noise=0.4)
    clusters = noisy_clusters(rng, labels, n_clusters, noise=0.4)

    fit_table = ref_confusion(fit_clusters, fit_labels, n_clusters)
    scores = fit_and_score(fit_clusters, fit_labels, clusters, labels, n_clusters)
    same_split = fit_and_score(clusters, labels, clusters, labels, n_clusters)

    assert scores["mapped_acc"] == ref_accuracy(clusters, labels, ref_majority_map(fit_table))
    best_count, _ = ref_best_one_to_one(ref_confusion(clusters, labels, n_clusters))
    assert same_split["hungarian_acc"] == best_count / len(labels)
    assert scores["nmi"] == pytest.approx(ref_nmi(labels, clusters), abs=1e-12)
    assert scores["ari"] == pytest.approx(ref_ari(labels, clusters), abs=1e-12)
    assert scores["clusters_used"] == len(set(clusters.tolist()))


def test_scores_are_plain_python_numbers_for_json():
    scores = fit_and_score([0, 1], [0, 1], [0, 1, 1], [0, 1, 0], n_clusters=2)
    assert set(scores) == {"mapped_acc", "hungarian_acc", "nmi", "ari", "clusters_used"}
    assert all(type(scores[k]) is float for k in ("mapped_acc", "hungarian_acc", "nmi", "ari"))
    assert type(scores["clusters_used"]) is int


def test_unmapped_cluster_never_matches_any_label():
    assert mapped_accuracy([0, 0, 1], [0, 9, 1], np.array([UNMAPPED, 1])) == 1 / 3


# ---------------------------------------------------------------- readouts


def test_argmax_readout_assigns_each_image_to_its_most_active_unit():
    z = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4], [0.45, 0.45, 0.1]])
    readout = make_readout("argmax", n_clusters=3, seed=0)
    assert readout.fit(z[:1]) is readout
    ids = readout.assign(z)
    assert ids.dtype == np.int64
    assert ids.tolist() == [1, 0, 2, 0]  # a tie goes to the lower unit


def blobs(rng, per_blob):
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    truth = np.repeat(np.arange(3), per_blob)
    return centres[truth] + rng.normal(scale=0.3, size=(truth.size, 3)), truth


def test_kmeans_readout_fitted_on_one_split_recovers_blobs_in_another():
    rng = np.random.default_rng(0)
    z_fit, _ = blobs(rng, per_blob=15)
    z_other, truth = blobs(rng, per_blob=10)
    ids = make_readout("kmeans", n_clusters=3, seed=0).fit(z_fit).assign(z_other)
    assert ids.dtype == np.int64
    # Each blob lands whole in one cluster and no two blobs share one.
    assert [len(set(ids[truth == b].tolist())) for b in range(3)] == [1, 1, 1]
    assert len(set(ids.tolist())) == 3


def test_kmeans_readout_is_deterministic_for_a_fixed_seed():
    z = np.random.default_rng(0).random((60, 4))  # no structure: the result hinges on the seed
    first = make_readout("kmeans", n_clusters=5, seed=7).fit(z).assign(z)
    second = make_readout("kmeans", n_clusters=5, seed=7).fit(z).assign(z)
    assert first.tolist() == second.tolist()


def test_kmeans_readout_refuses_to_assign_before_fit():
    with pytest.raises(RuntimeError, match="before fit"):
        make_readout("kmeans", n_clusters=2, seed=0).assign(np.zeros((2, 2)))


def test_an_unknown_readout_is_a_programming_error_the_schema_keeps_users_from():
    with pytest.raises(ValueError, match="unknown readout 'spectral'"):
        make_readout("spectral", n_clusters=10, seed=0)


def test_cluster_entropy_is_log_k_for_equal_clusters_and_lower_when_one_grows():
    assert cluster_entropy([0, 1, 2, 3] * 5, 4) == pytest.approx(math.log(4))
    # shares 0.5, 0.25, 0.25 (one unit unused): -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln 2
    assert cluster_entropy([0, 0, 1, 2], 4) == pytest.approx(1.5 * math.log(2))
    assert cluster_entropy([3, 3, 3], 4) == 0.0
