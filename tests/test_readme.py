"""The README's Python example runs as written (on two of the bone-marrow images)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_the_example_is_short():
    code = [line for line in python_example().splitlines() if line.strip()]
    assert len(code) <= 6


@pytest.mark.realdata
@pytest.mark.slow
def test_the_readme_example_runs(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLGAN_DATA_ROOT", str(data_root))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_example(), str(README), "exec"), namespace)
    cells, meta = namespace["cells"], namespace["meta"]
    assert len(cells) > 100 and set(cells["category"]) <= set(range(meta["categories"]))
    assert (tmp_path / "runs" / "python" / "report.html").is_file()
