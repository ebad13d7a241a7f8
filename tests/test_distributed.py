"""`spamcli train --distribute multi-worker`: TF_CONFIG, and two workers on
127.0.0.1 that train one model, the model single-process training makes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import generated_mail

from spamcli.distributed import DISTRIBUTIONS, Cluster, ClusterError, cluster_from_environment

ROOT = Path(__file__).resolve().parent.parent
# Two workers each import TensorFlow (4 s here) and train for seconds; a
# worker whose peer never came would wait for it, so each run is bounded.
WORKER_TIMEOUT = 240


def tf_config(cluster: dict[str, list[str]], task_type: str, index: int) -> dict[str, str]:
    return {
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
    }


def test_distributed_cluster_from_tf_config() -> None:
    workers = {"worker": ["a:1", "b:2", "c:3"]}
    assert cluster_from_environment(tf_config(workers, "worker", 0)) == Cluster(3, 0, "worker 0")
    assert cluster_from_environment(tf_config(workers, "worker", 2)).shard.index == 2
    assert cluster_from_environment(tf_config(workers, "worker", 0)).is_chief
    with_chief = {"chief": ["a:1"], "worker": ["b:2"]}
    chief = cluster_from_environment(tf_config(with_chief, "chief", 0))
    worker = cluster_from_environment(tf_config(with_chief, "worker", 0))
    assert chief.is_chief and chief.index == 0
    assert not worker.is_chief and worker.index == 1 and worker.workers == 2


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "needs the TF_CONFIG environment variable"),
        ({"TF_CONFIG": "{"}, "not JSON"),
        ({"TF_CONFIG": "[]"}, 'needs a "cluster" and a "task"'),
        (tf_config({"worker": ["a:1"], "ps": ["b:2"]}, "worker", 0), "chief and worker tasks only"),
        (
            tf_config({"worker": ["a:1"]}, "worker", 1),
            r"this task \(worker 1\) is not in the cluster",
        ),
        (tf_config({"chief": ["a:1", "b:2"]}, "chief", 0), "there can be one"),
        (tf_config({"worker": "a:1"}, "worker", 0), "must be a list"),
    ],
)
def test_distributed_bad_tf_config_is_refused(environment: dict[str, str], message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        cluster_from_environment(environment)


def test_distributed_cli_choices_are_the_core_ones() -> None:
    from spamcli.commands.train import train

    [option] = [parameter for parameter in train.params if parameter.name == "distribute"]
    assert tuple(option.type.choices) == DISTRIBUTIONS  # type: ignore[attr-defined]


def test_distributed_resume_and_distribute_conflict(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from spamcli.cli import cli

    result = runner.invoke(
        cli,
        ["train", "--resume", "--distribute", "multi-worker", "-m", str(tmp_path), str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "give --resume or --distribute, not both" in result.output


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            sockets.append(listener)
        return [listener.getsockname()[1] for listener in sockets]
    finally:
        for listener in sockets:
            listener.close()


def noisy_corpus(root: Path) -> Path:
    """80 ham and 80 spam, a fifth of each (through every date) under the
    other label, so that no model separates the validation mail perfectly:
    an AUC of 1.0 everywhere would compare nothing."""
    for label, other in (("ham", "spam"), ("spam", "ham")):
        for number, raw in enumerate(generated_mail(label, 80, seed=5)):
            folder = root / (other if number % 5 == 4 else label)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{label}-{number:03d}.eml").write_bytes(raw)
    return root


TRAINING_OPTIONS = ["--bits", "12", "--epochs", "3", "--seed", "3", "-q"]


# Not marked slow: 13 s here (34 s on a busy machine), under a minute.
def test_distributed_two_workers_train_one_model(tmp_path: Path) -> None:
    from spamcli import artifacts
    from spamcli.config import TrainingConfig
    from spamcli.online import Network
    from spamcli.training import network_sha256, train

    corpus = noisy_corpus(tmp_path / "corpus")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CUDA_VISIBLE_DEVICES": "",
            **tf_config({"worker": addresses}, "worker", index),
        }
        command = [sys.executable, "-m", "spamcli", "train", "--distribute", "multi-worker"]
        command += ["-m", str(tmp_path / f"model-{index}"), *TRAINING_OPTIONS, str(corpus)]
        workers.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
            )
        )
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=WORKER_TIMEOUT)
            assert worker.returncode == 0, stderr[-3000:]
            outputs.append(stdout)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    digests = [re.search(r"weights sha256 ([0-9a-f]{16})", output) for output in outputs]
    assert all(digests), outputs
    assert digests[0].group(1) == digests[1].group(1), outputs  # type: ignore[union-attr]
    assert f"saved {tmp_path / 'model-0'}" in outputs[0]
    assert "the chief saves the model" in outputs[1] and "saved" not in outputs[1]
    assert not (tmp_path / "model-1").exists()

    chief_dir = tmp_path / "model-0"
    metadata = artifacts.read_metadata(chief_dir)
    saved = Network.from_folder(chief_dir, metadata)
    assert network_sha256(saved).startswith(digests[0].group(1))  # type: ignore[union-attr]
    assert metadata["training"]["workers"] == 2

    single = train(
        tmp_path / "single", sources=[corpus], config=TrainingConfig(bits=12, epochs=3, seed=3)
    )
    distributed_auc = metadata["validation"]["roc_auc"]
    assert single.validation["roc_auc"] < 1.0, "the corpus should not be separable"
    assert abs(distributed_auc - single.validation["roc_auc"]) <= 0.001
    single_metadata = artifacts.read_metadata(tmp_path / "single")
    assert (
        metadata["training_data"]["fingerprint"] == single_metadata["training_data"]["fingerprint"]
    )
    # The same batches, each summed over two workers instead of one: the
    # same weights but for the order of the additions (3.6e-7 here).
    alone = Network.from_folder(tmp_path / "single", single_metadata)
    for layer, single_layer in zip(saved.layers, alone.layers, strict=True):
        np.testing.assert_allclose(layer.kernel, single_layer.kernel, atol=1e-4)
        np.testing.assert_allclose(layer.bias, single_layer.bias, atol=1e-4)
