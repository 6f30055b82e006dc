"""A new request typed while a form waits for an answer is taken up as that request, not as the answer.

The real trained bot (the stack of tests/bot/test_bot_dialogues.py): a complaint typed when the repair
report asked for a phone is not told the number is incomplete, and a complaint's description holds
the complaint's own words, not an earlier, unrelated report.
"""
from __future__ import annotations

from tests.bot.test_bot_dialogues import Stack, Turn, WebChat, _ticket_number, stack, web_chat

__all__ = ["stack"]  # the module's fixture, shared


def test_a_complaint_typed_when_a_phone_was_asked_is_taken_up(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        await chat.say("楼道水管漏水了")
        phone = await chat.say("清风街翠园6号楼2单元楼道")
        other = await chat.say("另外我要投诉抄表员态度很差")
        return phone, other
    phone, other = web_chat(stack, "topic-phone-complaint", dialogue)
    assert "电话" in phone.text
    assert "不完整" not in other.text and "号码" not in other.text, other.text
    # The complaint is taken up (it asks where to send its answer); the report waits for 继续.
    assert "继续" in other.text and "回复处理结果" in other.text, other.text


def test_another_complaint_typed_when_the_complaints_phone_was_asked_joins_it(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        asked = await chat.say("我要投诉抄表员态度很差")
        more = await chat.say("另外我还要投诉营业厅收费窗口的人也很不耐烦")
        done = await chat.say("13811114444")
        return asked, more, done
    asked, more, done = web_chat(stack, "topic-complaint-more", dialogue)
    assert "电话" in asked.text
    assert "不完整" not in more.text and "记下" in more.text and "电话" in more.text, more.text
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert "抄表员" in ticket["description"] and "收费窗口" in ticket["description"], ticket["description"]


def test_another_problem_typed_when_the_repairs_phone_was_asked_is_not_a_bad_number(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        await chat.say("楼道水管漏水了")
        phone = await chat.say("清风街翠园7号楼3单元楼道")
        more = [await chat.say(text) for text in ("对了，家里水表也不走了", "还有个问题，我家水是黄的",
                                                  "另外楼下井盖坏了", "师傅上次来修得不好")]
        done = await chat.say("13811115555")
        return phone, more, done
    phone, more, done = web_chat(stack, "topic-repair-more", dialogue)
    assert "电话" in phone.text
    for turn in more:  # each is more of the problem (the last one the classifier is unsure of), not a number
        assert "不完整" not in turn.text and "转人工" not in turn.text, turn.text
        assert "记下" in turn.text and "电话" in turn.text, turn.text
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert ticket["address"] == "清风街翠园7号楼3单元楼道"
    for words in ("水表", "黄", "井盖"):
        assert words in ticket["description"], ticket["description"]


def test_a_complaint_description_holds_only_the_complaint(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        await chat.say("我家停水了")
        switched = await chat.say("我要投诉抄表员态度很差")
        done = await chat.say("13811113333")
        return switched, done
    switched, done = web_chat(stack, "topic-complaint-words", dialogue)
    assert "回复处理结果" in switched.text, switched.text  # the complaint asks its own question
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert ticket["category"] == "complaint"
    assert "抄表员" in ticket["description"] and "停水" not in ticket["description"], ticket["description"]
