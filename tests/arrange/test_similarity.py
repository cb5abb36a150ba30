import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.arrange.similarity import (
    _NORMALISE_BLOCK_VALUES,
    Scores,
    average_distance,
    l2_normalise,
    min_distance,
    score,
    weighted_similarity_distance,
)

ATOL = 1e-5


def dense_scores(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AD, MD) from the full N×M distance matrix, in float64."""
    x = train.astype(np.float64)
    t = test.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    distances = -(x @ t.T)  # (N, M)
    return distances.mean(axis=1), distances.min(axis=1)


def random_vectors(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    # Not normalised on purpose: the module must normalise by itself. The shared offset mimics real
    # embeddings, whose mean is far from zero, so mean(AD) and the default w_avg are well conditioned.
    directions = rng.standard_normal((rows, dim)) + 0.5
    return (directions * rng.uniform(0.1, 10.0, (rows, 1))).astype(np.float32)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 333, 1000, 5000])
def test_scores_match_dense_computation(chunk_rows: int) -> None:
    rng = np.random.default_rng(0)
    train = random_vectors(rng, 1000, 24)
    test = random_vectors(rng, 37, 24)
    dense_ad, dense_md = dense_scores(train, test)

    ad = average_distance(train, test, chunk_rows=chunk_rows)
    md = min_distance(train, test, chunk_rows=chunk_rows)
    scores = score(train, test, chunk_rows=chunk_rows)

    assert ad.dtype == np.float32 and ad.shape == (1000,)
    assert md.dtype == np.float32 and md.shape == (1000,)
    np.testing.assert_allclose(ad, dense_ad, atol=ATOL)
    np.testing.assert_allclose(md, dense_md, atol=ATOL)
    np.testing.assert_allclose(scores.ad, dense_ad, atol=ATOL)
    np.testing.assert_allclose(scores.md, dense_md, atol=ATOL)
    ratio = dense_md.mean() / dense_ad.mean()
    assert scores.w_min == 1.0
    assert scores.w_avg == pytest.approx(ratio, rel=1e-4)
    np.testing.assert_allclose(scores.wsd, dense_md + ratio * dense_ad, rtol=1e-5, atol=1e-4)


def test_explicit_weights_are_used() -> None:
    rng = np.random.default_rng(1)
    train = random_vectors(rng, 50, 8)
    test = random_vectors(rng, 9, 8)
    dense_ad, dense_md = dense_scores(train, test)

    scores = score(train, test, w_min=0.25, w_avg=-2.0, chunk_rows=16)

    assert (scores.w_min, scores.w_avg) == (0.25, -2.0)
    np.testing.assert_allclose(scores.wsd, 0.25 * dense_md - 2.0 * dense_ad, atol=ATOL)


def test_scores_are_float32_and_read_only() -> None:
    rng = np.random.default_rng(2)
    scores = score(random_vectors(rng, 20, 4), random_vectors(rng, 3, 4))
    assert isinstance(scores, Scores)
    for values in (scores.ad, scores.md, scores.wsd):
        assert values.dtype == np.float32 and values.shape == (20,)
        with pytest.raises(ValueError):
            values[0] = 0.0


@st.composite
def train_test_with_ties(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Small integer-valued vectors drawn from a few distinct rows, so duplicates and ties are common."""
    dim = draw(st.integers(1, 4))
    row = st.lists(st.integers(-2, 2), min_size=dim, max_size=dim).filter(any)
    distinct = draw(st.lists(row, min_size=1, max_size=4))
    pick = st.integers(0, len(distinct) - 1)
    train_rows = draw(st.lists(pick, min_size=1, max_size=30))
    test_rows = draw(st.lists(pick, min_size=1, max_size=8))
    base = np.asarray(distinct, dtype=np.float32)
    # Positive rescaling must not change a cosine score.
    train_scale = np.asarray(
        draw(st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=len(train_rows), max_size=len(train_rows))),
        dtype=np.float32,
    )
    return base[train_rows] * train_scale[:, None], base[test_rows]


@settings(max_examples=200, deadline=None)
@given(data=train_test_with_ties(), chunk_rows=st.integers(1, 40))
def test_scores_match_dense_computation_on_ties(data: tuple[np.ndarray, np.ndarray], chunk_rows: int) -> None:
    train, test = data
    dense_ad, dense_md = dense_scores(train, test)

    np.testing.assert_allclose(average_distance(train, test), dense_ad, atol=ATOL)
    md = min_distance(train, test, chunk_rows=chunk_rows)
    np.testing.assert_allclose(md, dense_md, atol=ATOL)
    # The nearest test point is never farther than the average one, and cosines lie in [-1, 1].
    assert np.all(md <= dense_ad + ATOL)
    assert np.all(np.abs(md) <= 1 + ATOL)

    if abs(dense_ad.mean()) >= 0.05:
        scores = score(train, test, chunk_rows=chunk_rows)
        ratio = dense_md.mean() / dense_ad.mean()
        np.testing.assert_allclose(scores.wsd, dense_md + ratio * dense_ad, atol=1e-4 * max(1.0, abs(ratio)))


def test_default_w_avg_is_ratio_of_means() -> None:
    md = np.array([-0.9, -0.8, -0.5], dtype=np.float32)
    ad = np.array([-0.2, -0.1, -0.3], dtype=np.float32)

    scores = weighted_similarity_distance(md, ad)

    expected_ratio = md.astype(np.float64).mean() / ad.astype(np.float64).mean()
    assert scores.w_avg == pytest.approx(expected_ratio, rel=1e-12)
    np.testing.assert_allclose(scores.wsd, md + expected_ratio * ad, rtol=1e-6)
    np.testing.assert_array_equal(scores.md, md)
    np.testing.assert_array_equal(scores.ad, ad)


def test_degenerate_default_ratio_is_an_error() -> None:
    md = np.array([-0.9, -0.8], dtype=np.float32)
    ad = np.array([-0.5, 0.5], dtype=np.float32)
    with pytest.raises(ValueError, match=r"degenerate.*set w_avg explicitly"):
        weighted_similarity_distance(md, ad)
    # An explicit weight is fine, whatever mean(AD) is.
    assert weighted_similarity_distance(md, ad, w_avg=1.0).w_avg == 1.0


def test_degenerate_ratio_from_symmetric_test_set() -> None:
    # Test points e1 and -e1 average to the zero vector, so every AD is 0.
    rng = np.random.default_rng(3)
    train = random_vectors(rng, 10, 3)
    test = np.array([[1, 0, 0], [-1, 0, 0]], dtype=np.float32)
    with pytest.raises(ValueError, match="degenerate"):
        score(train, test)
    scores = score(train, test, w_avg=0.5)
    np.testing.assert_allclose(scores.ad, 0.0, atol=1e-7)


def test_l2_normalise_returns_unit_float32_rows_without_touching_input() -> None:
    vectors = np.array([[3.0, 4.0], [1e30, 1e30], [1e-30, 0.0], [-2.0, 0.0]], dtype=np.float32)
    before = vectors.copy()

    unit = l2_normalise(vectors, "train")

    assert unit.dtype == np.float32 and unit.shape == (4, 2)
    np.testing.assert_allclose(np.linalg.norm(unit.astype(np.float64), axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit[0], [0.6, 0.8], atol=1e-7)
    np.testing.assert_allclose(unit[1], [2**-0.5, 2**-0.5], atol=1e-7)
    np.testing.assert_array_equal(vectors, before)


def test_l2_normalise_accepts_float64_beyond_float32_range() -> None:
    vectors = np.array([[1e300, -1e300, 0.0], [1e-300, 0.0, 0.0], [1.0, 2.0, 2.0]])

    unit = l2_normalise(vectors, "test")

    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[2**-0.5, -(2**-0.5), 0], [1, 0, 0], [1 / 3, 2 / 3, 2 / 3]], atol=1e-7)


@pytest.mark.parametrize(
    ("bad_value", "expected"), [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (-np.inf, "NaN")]
)
@pytest.mark.parametrize("which", ["train", "test"])
def test_non_finite_values_name_array_and_row(bad_value: float, expected: str, which: str) -> None:
    rng = np.random.default_rng(4)
    arrays = {"train": random_vectors(rng, 8, 5), "test": random_vectors(rng, 6, 5)}
    arrays[which][3, 2] = bad_value
    arrays[which][5, 0] = bad_value
    for compute in (average_distance, min_distance, score):
        with pytest.raises(ValueError, match=rf"^{which} row 3 .*{expected}"):
            compute(arrays["train"], arrays["test"])


@pytest.mark.parametrize("which", ["train", "test"])
def test_zero_norm_row_names_array_and_row(which: str) -> None:
    rng = np.random.default_rng(5)
    arrays = {"train": random_vectors(rng, 8, 5), "test": random_vectors(rng, 6, 5)}
    arrays[which][2] = 0.0
    for compute in (average_distance, min_distance, score):
        with pytest.raises(ValueError, match=rf"^{which} row 2 has zero norm"):
            compute(arrays["train"], arrays["test"])


def test_error_names_the_first_offending_row_whatever_the_problem() -> None:
    vectors = np.ones((8, 3), dtype=np.float32)
    vectors[2] = 0.0
    vectors[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"^train row 2 has zero norm"):
        l2_normalise(vectors, "train")
    vectors[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"^train row 1 has a NaN or infinite value"):
        l2_normalise(vectors, "train")


@pytest.mark.parametrize("chunk_rows", [1, 3, 4, 16384])
def test_bad_train_row_in_a_later_chunk_is_named(chunk_rows: int) -> None:
    train = np.ones((12, 3), dtype=np.float32)
    train[10, 1] = np.nan
    test = np.ones((2, 3), dtype=np.float32)
    for compute in (average_distance, min_distance, score):
        with pytest.raises(ValueError, match=r"^train row 10 has a NaN"):
            compute(train, test, chunk_rows=chunk_rows)


def test_zero_norm_row_found_beyond_the_first_block() -> None:
    rows_per_block = _NORMALISE_BLOCK_VALUES // 8
    vectors = np.ones((rows_per_block + 10, 8), dtype=np.float32)  # the bad row is in the second block
    vectors[-3] = 0.0
    with pytest.raises(ValueError, match=rf"^queries row {vectors.shape[0] - 3} has zero norm"):
        l2_normalise(vectors, "queries")


def test_dimension_mismatch_names_both_arrays() -> None:
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match=r"train rows have 4 values, test rows have 5"):
        score(random_vectors(rng, 3, 4), random_vectors(rng, 3, 5))


@pytest.mark.parametrize(
    ("train_shape", "test_shape", "message"),
    [
        ((0, 4), (3, 4), r"^train is empty"),
        ((3, 4), (0, 4), r"^test is empty"),
        ((3, 0), (3, 0), r"^train is empty"),
    ],
)
def test_empty_inputs_are_errors(train_shape: tuple, test_shape: tuple, message: str) -> None:
    train = np.ones(train_shape, dtype=np.float32)
    test = np.ones(test_shape, dtype=np.float32)
    for compute in (average_distance, min_distance, score):
        with pytest.raises(ValueError, match=message):
            compute(train, test)


def test_one_dimensional_input_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^test must be a 2-D array"):
        score(np.ones((3, 4), dtype=np.float32), np.ones(4, dtype=np.float32))


@pytest.mark.parametrize("chunk_rows", [0, -5, 2.5, True])
def test_bad_chunk_rows_is_an_error(chunk_rows: object) -> None:
    ones = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer"):
        min_distance(ones, ones, chunk_rows=chunk_rows)  # type: ignore[arg-type]


def test_weighted_distance_rejects_mismatched_or_non_finite_scores() -> None:
    with pytest.raises(ValueError, match="same shape"):
        weighted_similarity_distance(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match=r"^md row 1 is NaN"):
        weighted_similarity_distance(np.array([0.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="non-empty"):
        weighted_similarity_distance(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="w_avg must be a finite number"):
        weighted_similarity_distance(np.ones(2), np.ones(2), w_avg=float("nan"))


@pytest.mark.parametrize("problem", ["nan", "zero"])
def test_faiss_search_reports_bad_rows_like_the_exact_path(problem: str) -> None:
    from dynamics.arrange.faiss_search import faiss_distances

    train = np.ones((20, 4), dtype=np.float32)
    train[13] = np.nan if problem == "nan" else 0.0
    expected = "has a NaN or infinite value" if problem == "nan" else "has zero norm"
    with pytest.raises(ValueError, match=rf"^train row 13 {expected}"):
        faiss_distances(train, np.ones((3, 4), dtype=np.float32), chunk_rows=8)
