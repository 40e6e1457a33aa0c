"""LOG_FORMAT=json: one masked JSON object a line, naming the update and chat it was written during."""

from __future__ import annotations

import io
import json
import logging

from bot.logs import masked_handler
from tests.conftest import BotHarness, make_account


async def test_json_lines_name_the_update_and_mask_the_phone(harness: BotHarness) -> None:
    await harness.add_accounts(make_account())
    output = io.StringIO()
    handler = masked_handler(output, "json")
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        cardholder = harness.cardholder()
        await cardholder.send("/start")
        await cardholder.share_contact("+8613800138000")
        await cardholder.send("1985-03-07")
        try:
            raise ValueError("for +8613800138000")
        except ValueError:
            logging.getLogger("test").exception("outside any update")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    verified = [line for line in lines if line["logger"] == "handlers.verify" and "verified" in line["message"]]
    assert len(verified) == 1
    assert verified[0]["chat_id"] == cardholder.chat_id
    assert isinstance(verified[0]["update_id"], int)
    (outside,) = [line for line in lines if line["message"] == "outside any update"]
    assert "update_id" not in outside and "chat_id" not in outside
    assert "ValueError" in outside["exception"]
    assert "13800138000" not in output.getvalue() and "1985-03-07" not in output.getvalue()
