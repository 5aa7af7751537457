"""``precision="auto"``: the hardware decision (flag sets injected; this CI machine is AVX2-only), the equivalence
check, and that the concrete precision is what the fingerprint (the cache key) and the mining manifest hold."""

from __future__ import annotations

import json

import pytest

from negmine.encoders.fast import AUTO_MIN_COSINE, auto_precision_candidate, cpu_flags

AVX2 = {"sse4_2", "avx", "avx2", "fma"}
SAPPHIRE_RAPIDS = AVX2 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}


@pytest.mark.parametrize(
    ("device", "flags", "expected"),
    [
        ("cpu", AVX2, "fp32"),
        ("cpu", AVX2 | {"avx512f", "avx512_vnni"}, "fp32"),  # AVX-512 without BF16: no
        ("cpu", AVX2 | {"avx512f", "avx512_bf16"}, "bf16-autocast"),  # Cooper Lake / Zen 4
        ("cpu", SAPPHIRE_RAPIDS, "bf16-autocast"),
        ("cpu", AVX2 | {"amx_bf16"}, "bf16-autocast"),
        ("cpu", set(), "fp32"),
        ("cuda", AVX2, "fp16"),
    ],
)
def test_candidate_from_flags(device, flags, expected):
    candidate, reason = auto_precision_candidate(device, flags)
    assert candidate == expected and reason


def test_cpu_flags_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\nbugs\t\t: x\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_auto_on_avx2_is_fp32_without_loading_the_model(minilm_path):
    from negmine.encoders.st import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(str(minilm_path), precision="auto", device="cpu", cpu_flags=AVX2)
    assert enc.precision == "fp32" and enc._base is None and enc._model is None
    assert enc.precision_choice["chosen"] == "fp32" and enc.precision_choice["check"] is None


def test_auto_with_bf16_flags_checks_equivalence_before_fingerprinting(minilm_path):
    from negmine.encoders.st import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder(str(minilm_path), precision="auto", device="cpu", cpu_flags=SAPPHIRE_RAPIDS)
    assert enc._precision is None  # deferred: the check needs the model
    fingerprint = enc.fingerprint()
    choice = enc.precision_choice
    assert choice["candidate"] == "bf16-autocast" and choice["check"]["texts"] >= 8
    expected = "bf16-autocast" if choice["check"]["cosine_min"] >= AUTO_MIN_COSINE else "fp32"
    assert choice["chosen"] == expected == enc.precision == fingerprint["precision"]
    explicit = SentenceTransformerEncoder(str(minilm_path), precision=expected, device="cpu")
    assert explicit.fingerprint() == fingerprint  # one cache entry for "auto" and the precision it chose


def test_a_failed_check_falls_back_to_fp32(minilm_path, monkeypatch):
    import negmine.encoders.fast as fast
    from negmine.encoders.st import SentenceTransformerEncoder

    monkeypatch.setattr(fast, "AUTO_MIN_COSINE", 1.5)  # no precision can pass
    enc = SentenceTransformerEncoder(str(minilm_path), precision="auto", device="cpu", cpu_flags={"amx_bf16"})
    assert enc.precision == "fp32" and enc.precision_choice["chosen"] == "fp32"
    assert enc.precision_choice["check"]["cosine_min"] < 1.5


def test_bad_precision_is_rejected():
    from negmine.encoders.st import SentenceTransformerEncoder

    with pytest.raises(ValueError, match="auto"):
        SentenceTransformerEncoder("unused", precision="fp8")


def test_mine_manifest_records_the_choice(tmp_path, minilm_path, toy):
    from negmine import mine_hard_negatives

    mine_hard_negatives(toy, str(minilm_path), precision="auto", out=str(tmp_path / "run"), num_negatives=2,
                        range_max=5, no_cache=True, show_progress_bar=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["precision"] == "auto"
    assert manifest["precision"]["requested"] == "auto"
    assert manifest["precision"]["chosen"] in ("fp32", "bf16-autocast")
    assert manifest["config"]["retriever_config"]["encoder"]["precision"] == manifest["precision"]["chosen"]
