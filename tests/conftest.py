"""Test-wide settings: offline, isolated Prefect home, shared fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before anything imports prefect or HF libraries.
os.environ.update(
    {
        "PREFECT_HOME": tempfile.mkdtemp(prefix="lw-prefect-home-"),
        "PREFECT_API_URL": "",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
        "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
)

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "samples" / "corpus"


def pytest_collection_modifyitems(config, items):
    """Skip ``gpu`` tests when no CUDA device is present (they are also deselected by default)."""
    if not any("gpu" in item.keywords for item in items):
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_corpus() -> Path:
    """The bundled sample corpus folder."""
    return SAMPLE_CORPUS


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The packaged SmolLM2 converted to safetensors (prepared once per machine)."""
    from pipeline.assets import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def smol_tokenizer(smollm2_dir):
    """The SmolLM2 tokenizer through the pipeline's adapter."""
    from pipeline.tokenizer import load_tokenizer

    return load_tokenizer(smollm2_dir)
