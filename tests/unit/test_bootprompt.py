"""limapy.bootprompt: when the host agent presses a key for "Press any key to boot from CD or DVD".

The serial texts are OVMF's (BdsDxe lines, escape sequences, NULs) as captured here with Debian's ovmf and
the stand-in boot program (tests/standin/bootcd.c), whose prompt prints as Windows' boot program's does.
"""

from __future__ import annotations

from limapy.bootprompt import (
    BLIND_AFTER,
    MAX_ATTEMPTS,
    MISS_GRACE,
    QUIET,
    SETUP_WRITES,
    WINDOW,
    BootPrompt,
    clean,
)

FIRMWARE = (
    "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 \"UEFI QEMU DVD-ROM QM00013 \" "
    "from PciRoot(0x0)/Pci(0x1,0x0)/Sata(0x0,0xFFFF,0x0)\r\nBdsDxe: starting Boot0001 \"UEFI QEMU DVD-ROM "
    "QM00013 \" from PciRoot(0x0)/Pci(0x1,0x0)/Sata(0x0,0xFFFF,0x0)\r\n\x00"
)
FALL_THROUGH = '\r\nBdsDxe: loading Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9)/FvFile(7C04A583)\r\n'


def run(events: list[tuple[float, str, int]], start: float = 0.0) -> list[tuple[float, object]]:
    bp = BootPrompt(start)
    return [(t, bp.feed(text, disk, t)) for t, text, disk in events]


def presses(results: list[tuple[float, object]]) -> list[float]:
    return [t for t, a in results if getattr(a, "press", False)]


def test_clean_strips_escapes_and_nuls() -> None:
    assert clean(FIRMWARE).startswith('BdsDxe: loading Boot0001 "UEFI QEMU DVD-ROM')
    assert "\x1b" not in clean(FIRMWARE) and "\x00" not in clean(FIRMWARE)


def test_no_key_before_the_prompt_while_the_firmware_talks() -> None:
    results = run([(0.5, FIRMWARE, 0), (1.0, "", 0), (30.0, "", 0)])
    assert presses(results) == []


def test_prompt_is_pressed_until_the_dots_stop() -> None:
    results = run([
        (0.5, FIRMWARE, 0),
        (5.0, "\r\nPress any key to boot from", 0),  # late, as on a slow host
        (5.1, " CD or DVD.", 0),
        (5.4, "", 0),
        (6.1, ".", 0),  # the key was not seen yet: its dots go on
        (6.5, "", 0),
        (9.0, "", 0),  # quiet for QUIET seconds after a press: the boot program went on
        (12.0, "", 0),
    ])
    assert presses(results) == [5.0, 5.4, 6.1, 6.5]
    answered = [a for _, a in results if getattr(a, "answered", False)]
    assert len(answered) == 1 and "answered the boot prompt" in (answered[0].message or "")
    assert 9.0 - 6.5 >= QUIET


def test_output_after_the_prompt_means_answered() -> None:
    results = run([
        (1.0, FIRMWARE + "\r\nPress any key to boot from CD or DVD.", 0),
        (1.3, "\r\nlimapy-standin: key pressed, starting Setup\r\n", 0),
        (1.6, "", 0),
    ])
    assert presses(results) == [1.0]
    assert results[1][1].answered is True
    assert not results[2][1].press


def test_missed_prompt_resets_and_retries_then_gives_up() -> None:
    bp = BootPrompt(0.0)
    t = 0.0
    resets = 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        t += 1
        assert bp.feed(FIRMWARE + "\r\nPress any key to boot from CD or DVD.", 0, t).press
        t += 0.3
        bp.feed(".", 0, t)
        t += 0.3
        action = bp.feed("....\r\nlimapy-standin: no key pressed" + FALL_THROUGH, 0, t)
        if attempt < MAX_ATTEMPTS:
            assert action.reset and not action.done and f"attempt {attempt + 1}" in (action.message or "")
            resets += 1
        else:
            assert action.done and not action.answered and "missed" in (action.message or "")
    assert resets == MAX_ATTEMPTS - 1
    assert not bp.feed("Press any key to boot from CD or DVD", 0, t + 1).press  # finished: never again


def test_disk_writes_end_pressing_for_good() -> None:
    bp = BootPrompt(0.0, disk_base=200_000)
    assert bp.feed(FIRMWARE + "Press any key to boot from CD or DVD.", 200_000, 1.0).press
    done = bp.feed("", 200_000 + SETUP_WRITES, 1.5)
    assert done.done and done.answered and "Setup started" in (done.message or "")
    # Setup's own reboot shows the prompt again: no key (it would boot the install media a second time).
    assert not bp.feed(FIRMWARE + "\r\nPress any key to boot from CD or DVD.", 0, 60.0).press


def test_setup_restart_long_after_the_answer_is_not_a_miss() -> None:
    bp = BootPrompt(0.0)
    bp.feed(FIRMWARE + "\r\nPress any key to boot from CD or DVD.", 0, 1.0)
    assert bp.feed("\r\nstarting\r\n", 0, 1.5).answered
    late = bp.feed(FALL_THROUGH, 0, 1.5 + MISS_GRACE + 1)
    assert not late.reset and not late.press


def test_silent_serial_presses_blindly_until_setup_writes() -> None:
    """Legacy BIOS prints the prompt on the screen only."""
    results = run([(1.0, "", 0), (BLIND_AFTER - 0.1, "", 0), (BLIND_AFTER, "", 0), (BLIND_AFTER + 0.3, "", 0),
                   (BLIND_AFTER + 0.6, "", 0), (BLIND_AFTER + 0.9, "", SETUP_WRITES)])
    assert presses(results) == [BLIND_AFTER, BLIND_AFTER + 0.6]
    assert "nothing on the serial console" in (results[2][1].message or "")  # type: ignore[attr-defined]
    assert results[-1][1].done  # type: ignore[attr-defined]


def test_bounded() -> None:
    bp = BootPrompt(0.0)
    bp.feed(FIRMWARE, 0, 1.0)
    end = bp.feed("", 0, WINDOW + 1)
    assert end.done and not end.answered and "stopped pressing" in (end.message or "")
