"""The catalogue of residents' words: the shipped file is complete, and an edited one with a mistake
stops the start with the key and the line."""
from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import ROOT
from hotline.messages import PLACES, CatalogueError, load_messages


def test_the_shipped_catalogue_has_every_text_with_the_right_placeholders() -> None:
    messages = load_messages(ROOT / "config" / "messages.yml")
    assert set(messages.texts) == set(PLACES)
    text = messages("ticket.assign", ticket="GD20261126-0007")
    assert text == "您的工单 GD20261126-0007 已派发给责任人员，正在安排处理。"


@pytest.mark.parametrize(("text", "error"), [
    ('conversation:\n  rated: "谢谢{nme}"\n', ":2: conversation.rated uses {nme}; allowed: none"),
    ('conversation:\n  rated: "谢谢"\n  rateed: "谢"\n', ":3: unknown key conversation.rateed"),
    ('conversation:\n  rated: "谢谢{"\n', ":2: conversation.rated: "),
    ('conversation:\n  rated: [1, 2]\n', ":2: conversation.rated must be a text"),
    ('conversation: {}\n', "missing key conversation.rated"),
])
def test_a_mistake_names_the_key_and_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "messages.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        load_messages(path, {"conversation.rated": frozenset()})
    assert error in str(caught.value)


def test_the_utility_edits_the_words_without_touching_code(tmp_path: Path) -> None:
    path = tmp_path / "messages.yml"
    path.write_text('ticket:\n  assign: "工单{ticket}已派单"\n', encoding="utf-8")
    messages = load_messages(path, {"ticket.assign": frozenset({"ticket"})})
    assert messages("ticket.assign", ticket="GD1") == "工单GD1已派单"
