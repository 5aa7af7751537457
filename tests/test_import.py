import subprocess
import sys

import negmine


def test_import_negmine_is_light():
    code = ("import sys, negmine; heavy = [m for m in ('torch', 'faiss', 'sentence_transformers', 'transformers', "
            "'openai', 'mteb', 'datasets') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve_to_their_defining_modules():
    import importlib

    assert negmine.__all__ == ["__version__", *negmine._EXPORTS]
    for name, module in negmine._EXPORTS.items():
        obj = getattr(negmine, name)
        assert obj is getattr(importlib.import_module(module), name), name
        if isinstance(obj, type) or callable(obj):
            assert obj.__name__ == name, f"negmine.{name} resolves to {obj.__name__}"


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError):
        negmine.does_not_exist  # noqa: B018
