import numpy as np
import pytest

from bm_gym.devices import CommandScript, ScriptError, Se2Keyboard, Se2KeyboardCfg, Se2Script, parse_device


def test_keyboard_drives_while_keys_are_held_and_fires_callbacks_on_press():
    held: set[str] = set()
    keyboard = Se2Keyboard(held.__contains__, Se2KeyboardCfg(v_x_sensitivity=1.0))
    presses = []
    keyboard.add_callback("R", lambda: presses.append("R"))
    assert keyboard.advance() is None, "idle without drive keys"
    held |= {"W", "A", "E"}
    assert keyboard.advance().tolist() == pytest.approx([1.0, 0.4, -0.8])
    held.clear()
    held.add("S")
    assert keyboard.advance()[0] == pytest.approx(-0.5)
    held.add("R")
    keyboard.advance()
    keyboard.advance()  # still held: one press, one call
    assert presses == ["R"]


def test_script_holds_each_row_on_the_given_clock_and_restarts_when_the_clock_goes_back(tmp_path):
    path = tmp_path / "demo.csv"
    path.write_text("# a demo\ntime,vx,vy,wz\n0, 0, 0, 0\n1.0, 0.6, 0, 0   # walk\n3.5, 0, 0, 0.8\n5, 0, 0, 0\n")
    now = [10.0]
    device = Se2Script(path, clock=lambda: now[0])
    assert device.advance().tolist() == [0.0, 0.0, 0.0]  # script time 0 is the first advance
    now[0] = 11.2
    assert device.advance().tolist() == pytest.approx([0.6, 0.0, 0.0])
    now[0] = 13.6
    assert device.advance().tolist() == pytest.approx([0.0, 0.0, 0.8]) and not device.finished
    now[0] = 20.0
    assert device.advance().tolist() == [0.0, 0.0, 0.0] and device.finished
    assert "demo.csv" in device.description
    now[0] = 1.5  # e.g. the simulation was reset: the script plays from its top again
    assert device.advance().tolist() == [0.0, 0.0, 0.0]
    now[0] = 2.6
    assert device.advance().tolist() == pytest.approx([0.6, 0.0, 0.0])


def test_scripts_round_trip_and_compress_samples(tmp_path):
    samples = [(2.0 + 0.02 * k, (0.5, 0.0, 0.0) if 10 <= k < 60 else (0.0, 0.0, 0.0)) for k in range(100)]
    script = CommandScript.from_samples(samples)
    assert script.times == pytest.approx((0.0, 0.2, 1.2)) and len(script.commands) == 3
    loaded = CommandScript.load(script.save(tmp_path / "s.csv"))
    assert loaded == script
    assert np.allclose(loaded.at(0.7), (0.5, 0.0, 0.0)) and loaded.at(-1.0) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("0, 1, 2\n", "expected 4 fields"),
        ("0, 1, x, 0\n", "not a number"),
        ("0, 1, 0, 0\n0, 1, 0, 0\n", "does not come after"),
        ("0, nan, 0, 0\n", "finite"),
        ("-1, 0, 0, 0\n", "negative"),
        ("# only a comment\n", "no command rows"),
    ],
)
def test_bad_scripts_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ScriptError, match=message) as err:
        CommandScript.load(path)
    assert "bad.csv" in str(err.value)


def test_device_spellings(tmp_path):
    assert parse_device("gamepad") == ("gamepad", None) and parse_device("keyboard") == ("keyboard", None)
    (tmp_path / "s.csv").write_text("0,0.5,0,0\n")
    kind, script = parse_device(f"script:{tmp_path / 's.csv'}")
    assert kind == "script" and script.commands == ((0.5, 0.0, 0.0),)
    for bad, message in (("joystick", "unknown device"), ("script:", "needs a file"),
                         (f"script:{tmp_path / 'missing.csv'}", "cannot read")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_device(bad)
