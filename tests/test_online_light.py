"""The standard-library learner (online_light.py) takes online.Network's step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import spamcli_imports, write_roomy_model

from spamcli import artifacts
from spamcli.features import feature_indices
from spamcli.online import Network
from spamcli.online_light import LightNetwork
from spamcli.tokens import message_tokens


def arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


@pytest.mark.parametrize(
    ("rounds", "model"), [(1, "trained"), (2, "trained"), (2, "hand-made ReLU")]
)
def test_online_light_steps_and_writes_what_numpy_does(
    trained_model_dir: Path,
    heldout_dir: Path,
    tmp_path: Path,
    rounds: int,
    model: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The trained model's hidden layers are leaky ReLU (train's default),
    # the hand-made one's ReLU (the built-in model's).
    from spamcli import online, online_light
    from tests.conftest import write_synthetic_model

    if model != "trained":
        trained_model_dir = write_synthetic_model(tmp_path / "hand-made")
    # The tiny model's 4,096 rows would be compacted after a few messages.
    monkeypatch.setattr(online, "COMPACTION_SHARE", 1.0)
    monkeypatch.setattr(online_light, "COMPACTION_SHARE", 1.0)
    metadata = artifacts.read_metadata(trained_model_dir)
    raws = [path.read_bytes() for path in sorted((heldout_dir / "ham").iterdir())[:3]]
    spec = artifacts.network_spec(trained_model_dir, metadata)
    messages = [
        feature_indices(message_tokens(raw, metadata["header_policy"]), spec.features)
        for raw in raws
    ]
    folders = {}
    for kind in ("numpy", "light"):
        source = trained_model_dir
        for round_number in range(rounds):
            # The second round starts from the first's folder: changed rows read back.
            network = (
                Network.from_folder(source, artifacts.read_metadata(source))
                if kind == "numpy"
                else LightNetwork(source, artifacts.read_metadata(source))
            )
            before = [
                network.learn(indices, float(number % 2)) for number, indices in enumerate(messages)
            ]
            folder = tmp_path / f"{kind}-{round_number}"
            folder.mkdir()
            entry, compacted = network.write(folder)
            assert not compacted
            new_metadata = dict(artifacts.read_metadata(source), weights=entry)
            artifacts.write_metadata(folder, new_metadata)
            source = folder
        folders[kind] = (source, before, entry)

    numpy_folder, numpy_before, numpy_entry = folders["numpy"]
    light_folder, light_before, light_entry = folders["light"]
    np.testing.assert_allclose(light_before, numpy_before, rtol=0, atol=1e-9)
    assert light_entry == numpy_entry
    numpy_arrays, light_arrays = (
        arrays(numpy_folder / "weights.npz"),
        arrays(light_folder / "weights.npz"),
    )
    assert numpy_arrays.keys() == light_arrays.keys()
    for name in numpy_arrays:
        np.testing.assert_allclose(
            light_arrays[name], numpy_arrays[name], rtol=0, atol=1e-6, err_msg=name
        )
    assert (light_folder / "kernel.npz").read_bytes() == (
        trained_model_dir / "kernel.npz"
    ).read_bytes()


def test_online_light_learn_of_one_message_imports_no_numpy(
    tmp_path: Path, heldout_dir: Path
) -> None:
    model_copy, _network = write_roomy_model(tmp_path / "model")
    message = sorted((heldout_dir / "spam").iterdir())[0]
    lines, errors = spamcli_imports(
        ["learn", "--ham", str(message), "-m", str(model_copy)], ["numpy"]
    )
    assert lines[-2:] == ["exit 0", "False"], errors
    assert artifacts.read_metadata(model_copy)["learned"]["ham"] == 1
