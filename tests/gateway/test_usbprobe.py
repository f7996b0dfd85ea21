"""The USB probe's answer: the result line among the REPL's noise, the board's reason when it
could not probe, and a clear error when the script said nothing."""
import pytest

from edgemon.usbprobe import parse_answer, probe_script


def test_the_answer_is_found_among_noise_and_a_failure_says_the_boards_reason():
    assert parse_answer('MicroPython v1.25\n>>> \nEDGEMON-PROBE {"cod":{"unit":1}}\n') == {"cod": {"unit": 1}}
    with pytest.raises(ValueError, match="config error: /node.json: poll_s"):
        parse_answer("EDGEMON-PROBE-ERR config error: /node.json: poll_s: must be > 0\n")
    with pytest.raises(ValueError, match="no answer from the probe script: Traceback"):
        parse_answer("Traceback (most recent call last)\n")
    s = probe_script("cod", "/b", board=True)
    assert "Esp32HW" in s and "'/b'+'/node.json'" in s and "'cod'" in s
    assert "UnixHW" in probe_script(None, board=False)
