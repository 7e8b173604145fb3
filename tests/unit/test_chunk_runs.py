"""How the matcher groups a case's parts into chunks (``run.chunk_runs``)."""

from __future__ import annotations

from tidehunt.detect.sigma.run import chunk_runs


def test_runs_hold_at_most_the_chunk_rows():
    sizes = [53_428, 52_849, 51_878, 45_961, 24_112, 11_193, 5_338, 3_785, 1_035, 319, 313]
    runs = chunk_runs(sizes, 98_304)
    assert runs == [[0], [1], [2, 3], [4, 5, 6, 7, 8, 9, 10]]  # 97,839 and 46,095 rows
    assert [i for r in runs for i in r] == list(range(len(sizes)))  # each once, in order
    for r in runs:
        assert len(r) == 1 or sum(sizes[i] for i in r) <= 98_304


def test_a_part_larger_than_a_chunk_is_a_run_of_its_own():
    assert chunk_runs([10, 500, 10, 10], 100) == [[0], [1], [2, 3]]
    assert chunk_runs([500], 100) == [[0]]
    assert chunk_runs([], 100) == []
    assert chunk_runs([0, 0, 0], 100) == [[0, 1, 2]]
    assert chunk_runs([50, 50, 1], 100) == [[0, 1], [2]]
