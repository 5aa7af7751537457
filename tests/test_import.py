import subprocess
import sys

import negmine


def test_import_negmine_is_light():
    code = ("import sys, negmine; heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'transformers', "
            "'openai', 'mteb', 'datasets') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve():
    for name in negmine.__all__:
        assert getattr(negmine, name) is not None


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError):
        negmine.does_not_exist  # noqa: B018
