"""A utility edits menus in YAML; a bad file is refused with a message that names the line."""
from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ROOT
from hotline.ivr.flows import FlowError, load_flow, load_flows

MAIN = (ROOT / "ivr_flows" / "main.yml").read_text(encoding="utf-8")


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_default_menu_keeps_the_digits_residents_know() -> None:
    menu = load_flows(ROOT / "ivr_flows")["main"].nodes["main_menu"].menu
    assert menu is not None
    assert {k: v for k, v in menu.options.items()} == {
        "1": "balance", "2": "repair", "3": "complaint", "4": "info", "0": "person", "*": "main_menu"}


@pytest.mark.parametrize("old, new, needle, message", [
    ('"4": info', '"4": infos', '"4": infos', "no node 'infos'"),
    ("    play: [welcome]", "    play: [welcom]", "play: [welcom]", "no prompt 'welcom'"),
    ("    action: list_outages", "    action: list_outage", "action: list_outage", "unknown action 'list_outage'"),
    ('        "0": person', '        "A": person', '"A": person', "not a key on a telephone"),
    ("      - if: has_arrears", "      - if: rich", "- if: rich", "unknown condition 'rich'"),
    ("    transfer: \"\"\n    on_failure: voicemail", "    transfer: \"\"", 'transfer: ""',
     "transfer needs on_failure"),
    ("      min_digits: 10\n", "      min_digits: 10\n      colour: blue\n", "colour: blue",
     "Extra inputs are not permitted"),
])
def test_a_bad_flow_is_refused_naming_the_line(tmp_path: Path, old: str, new: str, needle: str,
                                               message: str) -> None:
    assert old in MAIN
    text = MAIN.replace(old, new, 1)
    path = tmp_path / "main.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FlowError) as refused:
        load_flow(path)
    lines = [line for line in str(refused.value).splitlines() if message in line]
    assert lines, str(refused.value)
    reported = int(lines[0].split(f"{path}:")[1].split(":")[0])
    # The line of the entry itself, or of the node that holds it (a few lines above).
    assert 0 <= _line(text, needle) - reported <= 4, (reported, _line(text, needle), str(refused.value))


def test_broken_yaml_and_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "main.yml").write_text("name: main\nnodes: [\n", encoding="utf-8")
    with pytest.raises(FlowError, match="not valid YAML"):
        load_flows(tmp_path)
    (tmp_path / "main.yml").write_text(MAIN, encoding="utf-8")
    (tmp_path / "copy.yml").write_text(MAIN, encoding="utf-8")
    with pytest.raises(FlowError, match="defined twice"):
        load_flows(tmp_path)


def test_the_engine_implements_exactly_the_vocabulary_the_flow_files_may_use() -> None:
    from hotline.ivr import engine, vocabulary
    assert set(engine.ACTIONS) == set(vocabulary.ACTIONS)
    assert set(engine.CONDITIONS) == set(vocabulary.CONDITIONS)
