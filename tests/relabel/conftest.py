"""Fixtures of the relabel tests: a real llama.cpp OpenAI-compatible server on loopback with SmolLM2-135M.

The server is started by the fixture (``python -m llama_cpp.server``) and stopped at teardown. When it cannot start,
the test fails in CI (``CI=true``) and is skipped elsewhere with the reason. The GGUF is looked up in
``$NEGMINE_MODELS`` (default ``~/.cache/negmine-models``) and fetched with ``../shared/models/fetch_models.sh
smollm2`` (relative to the repository root) when absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from negmine.testing import free_port

REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO.parent / "shared" / "models" / "fetch_models.sh"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"llama.cpp server test cannot run in CI: {reason}")
    pytest.skip(reason)


def models_dir() -> Path:
    return Path(os.environ.get("NEGMINE_MODELS", Path.home() / ".cache" / "negmine-models")).expanduser()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = models_dir() / SMOLLM2_FILE
    if not path.is_file():
        if not FETCH_SCRIPT.is_file():
            _unavailable(f"{path} is missing and {FETCH_SCRIPT} (to fetch it) is not there")
        env = {**os.environ, "MODELS": str(models_dir())}
        result = subprocess.run(["bash", str(FETCH_SCRIPT), "smollm2"], env=env, capture_output=True, text=True,
                                timeout=900)
        if result.returncode != 0 or not path.is_file():
            _unavailable(f"fetching SmolLM2 failed (rc={result.returncode}): {result.stderr[-2000:]}")
    return path


@pytest.fixture(scope="session")
def llama_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory):
    """Base URL (``http://127.0.0.1:PORT/v1``) of a running llama.cpp server; stopped after the session."""
    try:
        import llama_cpp.server.app  # noqa: F401  (the server extra: fastapi, uvicorn, sse-starlette ...)
    except ImportError as err:
        _unavailable(f"llama.cpp server not importable ({err}); pip install 'llama-cpp-python[server]'")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--seed", "0"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    ready = False
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                ready = response.status == 200
        except OSError:
            pass
        if ready:
            break
        time.sleep(0.5)
    if not ready:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        tail = log_path.read_text(errors="replace")[-3000:]
        _unavailable(f"llama.cpp server did not come up on port {port} (rc={process.poll()}):\n{tail}")
    yield base_url
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
