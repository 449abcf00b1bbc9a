"""Seeds in worker processes: same verdict and scores for any n_jobs, a raising seed named."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from grl_props.label_removal import EmbedError, assert_label_removed
from grl_props.parallel import JOBS_VARIABLE, SeedFailure, map_seeds

pytest_plugins = ["pytester"]


def _embed(seed: int, shift: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """A tiny torch model, seeded by ``seed``: latents leaking through a class-1 ``shift``."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=600, p=[0.75, 0.15, 0.10])
    x = torch.as_tensor(rng.standard_normal((600, 6)), dtype=torch.float32)
    x[:, 0] += shift * torch.as_tensor(y == 1)
    torch.manual_seed(seed)
    encoder = nn.Linear(6, 3)
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    for _ in range(20):
        loss = (encoder(x) - x[:, :3]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return encoder(x).numpy(), y


@pytest.mark.parametrize("probe", ["logistic", "mlp"])
def test_two_workers_give_the_same_verdict_and_scores_bit_for_bit(probe):
    control = partial(_embed, shift=4.0)
    here = assert_label_removed(_embed, control=control, probe=probe)
    workers = assert_label_removed(_embed, control=control, probe=probe, n_jobs=2)
    assert here.verdict == workers.verdict
    # ==, not close: every score of every arm, probe and seed, as computed
    assert [s.to_json() for s in here.scores] == [s.to_json() for s in workers.scores]
    assert here.seeds == workers.seeds == tuple(range(9))
    assert any(s.leakage("reversal", probe) != 0 for s in here.scores)  # not trivially equal


def _raises_on_seed_3(seed: int) -> tuple[np.ndarray, np.ndarray]:
    if seed == 3:
        raise RuntimeError("out of memory in fit")
    return _embed(seed)


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_a_raising_seed_is_named_and_the_other_seeds_are_kept(n_jobs):
    with pytest.raises(EmbedError) as caught:
        assert_label_removed(_raises_on_seed_3, n_jobs=n_jobs)
    text = str(caught.value)
    assert "seed 3: RuntimeError: out of memory in fit (at test_parallel_seeds.py:" in text
    assert "1 of 9 seeds" in text
    assert [s.seed for s in caught.value.scores] == [0, 1, 2, 4, 5, 6, 7, 8]


def test_map_seeds_returns_every_seed_and_failures_in_place():
    def square_or_fail(seed: int) -> int:
        if seed % 2:
            raise ValueError(f"odd {seed}")
        return seed * seed

    for n_jobs in (None, 1, 2):
        done = dict(map_seeds(square_or_fail, range(6), n_jobs))
        assert sorted(done) == list(range(6))
        assert [done[s] for s in (0, 2, 4)] == [0, 4, 16]
        assert all(isinstance(done[s], SeedFailure) and str(done[s].error) == f"odd {s}"
                   for s in (1, 3, 5))


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2", True])
def test_bad_n_jobs_is_refused_before_any_seed_runs(n_jobs):
    calls = []
    with pytest.raises(ValueError, match="n_jobs must be None or a whole number other than 0"):
        assert_label_removed(lambda s: calls.append(s), n_jobs=n_jobs)
    assert calls == []


def test_grl_jobs_runs_the_seeds_of_a_users_test_in_worker_processes(pytester, tmp_path):
    pids = tmp_path / "pids"
    pytester.makepyfile(test_user=f"""
import os
import numpy as np
from grl_props.label_removal import assert_label_removed

def embed(seed):
    with open({str(pids)!r}, "a") as f:
        f.write(f"seed {{os.getpid()}}\\n")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((400, 3)), rng.choice(3, size=400, p=[0.75, 0.15, 0.10])

def test_removed():
    assert os.environ["{JOBS_VARIABLE}"] == "2"
    assert_label_removed(embed)
    with open({str(pids)!r}, "a") as f:
        f.write(f"test {{os.getpid()}}\\n")
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--grl-jobs", "2")
    assert result.ret == 0, result.stdout.str()
    rows = [line.split() for line in pids.read_text().splitlines()]
    seed_pids = [pid for kind, pid in rows if kind == "seed"]
    (test_pid,) = [pid for kind, pid in rows if kind == "test"]
    assert len(seed_pids) == 9 and test_pid not in seed_pids  # every seed ran in a worker


def test_grl_jobs_is_restored_after_the_session(pytester, monkeypatch):
    monkeypatch.setenv(JOBS_VARIABLE, "7")  # the user's own setting, before pytest starts
    pytester.makepyfile(test_user=f"""
import os

def test_sees_the_option():
    assert os.environ["{JOBS_VARIABLE}"] == "3"
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--grl-jobs", "3")
    assert result.ret == 0, result.stdout.str()
    assert os.environ[JOBS_VARIABLE] == "7"


class _Unpicklable(Exception):
    def __init__(self, code: int, why: str) -> None:  # pickling calls it with one argument
        super().__init__(f"{why} ({code})")


def _raises_unpicklable(seed: int):
    raise _Unpicklable(seed, "broken fit")


def test_an_exception_that_cannot_cross_processes_keeps_its_type_and_message():
    done = dict(map_seeds(_raises_unpicklable, [4], n_jobs=2))
    assert isinstance(done[4], SeedFailure) and isinstance(done[4].error, RuntimeError)
    assert str(done[4].error) == "_Unpicklable: broken fit (4)"
    assert done[4].where.startswith("test_parallel_seeds.py:")


def test_grl_jobs_zero_is_a_usage_error(pytester):
    pytester.makepyfile(test_user="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--grl-jobs", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--grl-jobs must be a whole number other than 0" in result.stderr.str()


def _embed_noting_pid(seed: int, path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return _embed(seed)


def test_a_local_dask_cluster_through_joblib_gives_the_same_verdict_and_scores(tmp_path):
    import sys

    import cloudpickle
    from distributed import Client, LocalCluster
    from joblib import parallel_config

    # The workers cannot import this test module: send its functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        control = partial(_embed, shift=4.0)
        here = assert_label_removed(_embed, control=control, probe="mlp")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster), \
                parallel_config(backend="dask"):
            cluster_result = assert_label_removed(
                partial(_embed_noting_pid, path=str(tmp_path / "pids")), control=control,
                probe="mlp", n_jobs=-1)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert here.verdict == cluster_result.verdict
    assert [s.to_json() for s in here.scores] == [s.to_json() for s in cluster_result.scores]
    pids = set((tmp_path / "pids").read_text().split())
    assert len(pids) >= 1 and str(os.getpid()) not in pids  # the seeds ran on the cluster
