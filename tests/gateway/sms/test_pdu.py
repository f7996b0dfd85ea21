"""PDUs the gateway writes, checked by the independent decoder (smspdudecoder)."""

import pytest
from hypothesis import given, settings, strategies as st

from edgemon.sms.pdu import PduError, encode_submit, split_units

from .pdudecoder import decode, join_messages

CHINESE = "【莱西市污水处理厂】化学需氧量监测值45.2mg/L，超过限值40mg/L，开始于11月25日09:30。"


def test_short_chinese_text_is_one_ucs2_pdu_with_the_number():
    pdus = encode_submit("+8613800138000", "氨氮超标：2.5mg/L")
    assert len(pdus) == 1
    d = decode(pdus[0].hex)
    assert d == {"number": "+8613800138000", "text": "氨氮超标：2.5mg/L", "concat": None,
                 "encoding": "ucs2", "udhi": False}
    assert pdus[0].tpdu_len == len(pdus[0].hex) // 2 - 1  # SMSC octet "00" not counted


def test_national_number_keeps_its_digits():
    d = decode(encode_submit("13800138000", "测试")[0].hex)
    assert d["number"] == "13800138000"


def test_seventy_characters_fit_one_sms_seventy_one_need_two_parts():
    assert len(encode_submit("+8613800138000", "氮" * 70)) == 1
    pdus = encode_submit("+8613800138000", "氮" * 71, ref=9)
    assert [decode(p.hex)["concat"] for p in pdus] == [(9, 2, 1), (9, 2, 2)]
    assert [len(decode(p.hex)["text"]) for p in pdus] == [67, 4]


def test_long_alarm_text_is_joined_back_exactly():
    text = CHINESE * 4
    pdus = encode_submit("+8613800138000", text, ref=200)
    assert len(pdus) == 4
    assert join_messages([p.hex for p in pdus]) == [("+8613800138000", text)]


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFFFF,
                                           blacklist_categories=("Cs",)), min_size=1, max_size=400),
       ref=st.integers(0, 255), digits=st.text("0123456789", min_size=5, max_size=15))
def test_any_text_round_trips_through_the_independent_decoder(text, ref, digits):
    number = "+" + digits
    pdus = encode_submit(number, text, ref)
    assert join_messages([p.hex for p in pdus]) == [(number, text)]
    for p in pdus:
        assert len(bytes.fromhex(p.hex)) - 1 == p.tpdu_len
        assert p.tpdu_len <= 140 + 15  # header + at most 140 octets of user data


def test_surrogate_pairs_are_never_split_across_parts():
    text = "水" * 66 + "😀" + "水" * 10
    parts = split_units(text)
    assert "".join(parts) == text and all("\ud83d" not in p for p in parts)
    assert parts[0].endswith("水") and parts[1].startswith("😀")


@pytest.mark.parametrize("number", ["", "+86", "138-0013-8000", "+86 138", "abc"])
def test_bad_numbers_are_refused(number):
    with pytest.raises(PduError):
        encode_submit(number, "x")


def test_empty_text_and_bad_reference_are_refused():
    with pytest.raises(PduError):
        encode_submit("+8613800138000", "")
    with pytest.raises(PduError):
        encode_submit("+8613800138000", "x", ref=256)
