"""Shared, session-scoped tiny runs for the serving, evaluation and add-domain tests."""

import pandas as pd
import pytest

from mlora_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from serving_helpers import SYNTHETIC, new_domain_frame, start_cli


def _train(path, **model):
    from mlora_tf.runs.train import train_run

    config = RunConfig(
        data=DataConfig(dataset="synthetic", options=dict(SYNTHETIC)),
        model=ModelConfig(hidden_units=(16, 8), **model),
        train=TrainConfig(max_epochs=1),
    )
    train_run(config, output_dir=str(path))
    return str(path)


@pytest.fixture(scope="session")
def mlora_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs") / "wdl_mlora", adapter="mlora")


@pytest.fixture(scope="session")
def moe_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs") / "wdl_moe", adapter="moe", experts_per_domain=1)


@pytest.fixture(scope="session")
def programs(mlora_run, tmp_path_factory):
    """`mlora-export`, `mlora-add-domain` and `mlora-evaluate` on the MLoRA run, all
    started at once in the background; each fixture or test waits for its own."""
    from mlora_tf.export import RunFolder
    from mlora_tf.runs.train import load_run_dataset

    folder = tmp_path_factory.mktemp("programs")
    paths = {
        "export": str(folder / "export" / "wdl_mlora" / "1"),
        "new_domain_csv": str(folder / "kids.csv"),
        "plus_run": str(folder / "wdl_mlora_kids"),
        "test_csv": str(folder / "test.csv"),
        "metrics": str(folder / "eval" / "metrics.json"),
    }
    new_domain_frame().to_csv(paths["new_domain_csv"], index=False)
    test = load_run_dataset(RunFolder.open(mlora_run).config).splits["test"]
    pd.DataFrame({c: test[c] for c in ("uid", "pid", "domain", "label")}).to_csv(paths["test_csv"], index=False)
    started = {
        "export": start_cli("export", f"--run_dir={mlora_run}", f"--export_dir={paths['export']}"),
        "add_domain": start_cli(
            "add_domain", f"--run_dir={mlora_run}", f"--domain_data={paths['new_domain_csv']}",
            f"--output_dir={paths['plus_run']}", "--max_epochs=3",
        ),
        "evaluate": start_cli(
            "evaluate", f"--run_dir={mlora_run}", f"--data={paths['test_csv']}", f"--output={paths['metrics']}"
        ),
    }
    yield started, paths
    for job in started.values():
        if job.proc.poll() is None:
            job.proc.kill()
            job.proc.wait()


@pytest.fixture(scope="session")
def mlora_export(programs):
    """The MLoRA run exported by the `mlora-export` program."""
    started, paths = programs
    proc = started["export"].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "serving_default" in proc.stdout and paths["export"] in proc.stdout
    return paths["export"]


@pytest.fixture(scope="session")
def moe_export(moe_run, tmp_path_factory):
    from mlora_tf.export import export_run

    return export_run(moe_run, str(tmp_path_factory.mktemp("export") / "wdl_moe" / "1"))


@pytest.fixture(scope="session")
def run_dataset():
    """The dataset both runs were trained on (re-loaded from a run config)."""
    from mlora_tf.export import RunFolder
    from mlora_tf.runs.train import load_run_dataset

    def load(run_dir):
        return load_run_dataset(RunFolder.open(run_dir).config)

    return load


@pytest.fixture(scope="session")
def plus_run(programs):
    """The MLoRA run with a fourth domain, added by the `mlora-add-domain` program."""
    started, paths = programs
    proc = started["add_domain"].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "domain 3 (kids)" in proc.stdout
    return paths["plus_run"]
