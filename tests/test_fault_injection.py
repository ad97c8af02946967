"""kill -9 at random points of segment, train, assign and run: the re-run gives the uninterrupted result.

The small version of ``cellgan bench reliability`` (which kills each stage 20 times or more).
"""

from __future__ import annotations

import pytest

from cellgan.bench.reliability import STAGES, kill_trials, prepare_harness


@pytest.fixture(scope="module")
def harness(data_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    return prepare_harness(data_root, work, size=160, train_options={"iterations": 8, "checkpoint_every": 2})


#: Kills per stage: a few, the whole run (its report included) once.
KILLS = {"segment": 3, "train": 2, "assign": 2, "run": 1}


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("stage", STAGES)
def test_a_killed_stage_continues_to_the_uninterrupted_result(harness, tmp_path, stage):
    kills = KILLS[stage]
    result = kill_trials(stage, harness, tmp_path, kills=kills, chain=min(kills, 2), seed=STAGES.index(stage))
    assert result["problems"] == []
    assert result["faults_injected"] >= kills and result["faults_survived"] == result["faults_injected"]
    assert result["max_steps_lost"] <= harness.config.train.checkpoint_every
