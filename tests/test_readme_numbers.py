"""Every number in README's "Measured results" section occurs in some benchmarks/results file (.json or .md).

A figure in the README that no script wrote cannot be traced or rerun. A README number matches a results value when
the value, rounded to the README's decimals, equals it, directly or as a percentage / points (x 100); thousands
separators and the Unicode minus are normalised. Inline code (`...`: commands, file names) is not a figure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
NUMBER = re.compile(r"(?<![\w.@/=-])[-+−]?\d[\d,]*(?:\.\d+)?(?![\w.]\w)(?![\w])")


def measured_section(text: str) -> str:
    start = text.index("## Measured results")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def _strip(text: str) -> str:
    text = re.sub(r"`[^`]*`", " ", text)  # inline code: commands, paths, recipe names
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    return re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)


def readme_numbers(text: str) -> list[str]:
    return [m.group(0) for m in NUMBER.finditer(_strip(measured_section(text)))]


def _value(token: str) -> float:
    return float(token.replace(",", "").replace("−", "-").lstrip("+"))


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def results_values() -> set[float]:
    values: set[float] = set()

    def walk(obj) -> None:
        if isinstance(obj, bool):
            return
        if isinstance(obj, (int, float)):
            values.add(float(obj))
        elif isinstance(obj, str):
            values.update(_value(t) for t in NUMBER.findall(obj))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    for path in sorted(RESULTS.rglob("*")):
        if path.suffix == ".json":
            walk(json.loads(path.read_text(encoding="utf-8")))
        elif path.suffix == ".md":
            walk(path.read_text(encoding="utf-8"))
    return values


def matches(token: str, values: set[float]) -> bool:
    x, d = abs(_value(token)), _decimals(token)
    tolerance = 0.5 * 10 ** -d + 1e-9
    return any(abs(abs(v) - x) <= tolerance or abs(abs(100 * v) - x) <= tolerance for v in values)


def test_every_readme_figure_is_in_a_results_file() -> None:
    numbers = readme_numbers((REPO / "README.md").read_text(encoding="utf-8"))
    assert numbers, "README has no Measured results section with numbers"
    values = results_values()
    missing = sorted({n for n in numbers if not matches(n, values)}, key=_value)
    assert missing == [], f"README figures that no benchmarks/results file holds: {missing}"


def test_the_check_catches_a_typed_number() -> None:
    values = {0.6844, 0.92111, 315.0, 0.999}
    assert matches("0.6844", values) and matches("0.9211", values) and matches("99.9", values)
    assert matches("315", values) and matches("−0.6844", values)
    assert not matches("0.89", values) and not matches("23", values) and not matches("0.6845", values)
    text = "## Measured results\n\nnDCG@10 0.6844 with `--seeds 12,13` at 1.96× on all-MiniLM-L6-v2\n## Next\n7"
    assert readme_numbers(text) == ["0.6844", "1.96"]
