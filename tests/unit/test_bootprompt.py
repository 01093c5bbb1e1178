"""limapy.guest.windows.bootprompt: when the host agent presses a key for "Press any key to boot from CD or DVD".

The serial texts are OVMF's and AAVMF's (BdsDxe lines, escape sequences, NULs) as captured here with Debian's
ovmf and qemu-efi-aarch64 (2022.11, QEMU 7.2, TCG) and the stand-in boot program (tests/standin/bootcd.c), whose
prompt prints as Windows' boot program's does; OVMF_SILENT/AAVMF_SILENT are the firmware's whole output for the
variant whose prompt shows on the screen only (issue 23): no prompt on the serial console at all.
"""

from __future__ import annotations

import pytest

from limapy.guest.windows.bootprompt import (
    BLIND_AFTER,
    BLIND_INTERVAL,
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
# Captured (the screen-only stand-in, no key pressed): up to the CD boot, then the boot program's timeout and the
# firmware moving on.
OVMF_SILENT = (
    "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 "
    '"UEFI QEMU DVD-ROM QM00003 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x1,0xFFFF,0x0)\r\nBdsDxe: starting Boot0001 '
    '"UEFI QEMU DVD-ROM QM00003 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x1,0xFFFF,0x0)\r\n'
)
AAVMF_SILENT = (
    "UEFI firmware (version  built at 13:10:49 on Nov  5 2024)\r\n\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01H\x1b[2J"
    '\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001 "UEFI QEMU QEMU USB HARDDRIVE 1-0000:00:01.0-1" '
    'from PciRoot(0x0)/Pci(0x1,0x0)/USB(0x0,0x0)\r\nBdsDxe: starting Boot0001 "UEFI QEMU QEMU USB HARDDRIVE '
    '1-0000:00:01.0-1" from PciRoot(0x0)/Pci(0x1,0x0)/USB(0x0,0x0)\r\n'
)
SILENT_TIMEOUT = (
    "limapy-standin: the prompt shows on the screen only\r\n\r\nlimapy-standin: no key pressed\r\n"
    'BdsDxe: failed to start Boot0001 "UEFI QEMU DVD-ROM QM00003 " from PciRoot(0x0)/Pci(0x1F,0x2)/'
    "Sata(0x1,0xFFFF,0x0): Not Found\r\n"
)


def run(events: list[tuple[float, str, int]], start: float = 0.0) -> list[tuple[float, object]]:
    bp = BootPrompt(start)
    return [(t, bp.feed(text, disk, t)) for t, text, disk in events]


def presses(results: list[tuple[float, object]]) -> list[float]:
    return [t for t, a in results if getattr(a, "press", False)]


def test_clean_strips_escapes_and_nuls() -> None:
    assert clean(FIRMWARE).startswith('BdsDxe: loading Boot0001 "UEFI QEMU DVD-ROM')
    assert "\x1b" not in clean(FIRMWARE) and "\x00" not in clean(FIRMWARE)


def test_no_key_before_the_firmware_starts_the_install_media() -> None:
    loading = FIRMWARE.split("\r\nBdsDxe: starting")[0]  # "loading Boot0001", not yet "starting"
    results = run([(0.5, loading, 0), (1.0, "", 0), (BLIND_AFTER - 1, "", 0)])
    assert presses(results) == []


@pytest.mark.parametrize("firmware", [OVMF_SILENT, AAVMF_SILENT], ids=["ovmf", "aavmf"])
def test_keys_from_the_cd_boot_line_though_the_prompt_never_reaches_the_serial_console(firmware: str) -> None:
    """Issue 23: the boot program's prompt shows on the screen only. Keys go from the firmware's CD boot line,
    every BLIND_INTERVAL, until Setup writes the disk; never after."""
    bp = BootPrompt(0.0)
    assert not bp.feed(firmware.split("BdsDxe: starting")[0], 0, 1.0).press
    first = bp.feed(firmware[len(firmware.split("BdsDxe: starting")[0]) :], 0, 1.2)
    assert first.press and "starting the install media" in (first.message or "")
    times = [t for t in (1.3, 1.5, 1.7, 1.9, 2.2, 2.7, 3.0) if bp.feed("", 0, t).press]
    assert times == [1.7, 2.2, 2.7]
    assert all(b - a >= BLIND_INTERVAL for a, b in zip([1.2, *times[:-1]], times, strict=True))
    done = bp.feed("limapy-standin: key pressed, starting Setup\r\n", SETUP_WRITES, 3.5)
    assert done.done and done.answered and "Windows Setup started" in (done.message or "")
    assert not bp.feed(FIRMWARE, 0, 60.0).press  # Setup's own reboot: the CD boots again, no key


def test_silent_prompt_missed_resets_and_presses_again() -> None:
    """Without the prompt on the serial console a miss still shows: the firmware goes on to the next option right
    after starting the CD (real OVMF output). The guest is reset and pressed for again."""
    bp = BootPrompt(0.0)
    assert bp.feed(OVMF_SILENT, 0, 2.0).press
    action = bp.feed(SILENT_TIMEOUT, 0, 9.0)
    assert action.reset and "attempt 2" in (action.message or "")
    assert bp.feed(OVMF_SILENT, 0, 12.0).press


def test_a_restart_long_after_the_cd_boot_ends_pressing() -> None:
    """Never after the first reboot: a fall-through long after the CD started is a restart, not a miss."""
    bp = BootPrompt(0.0)
    assert bp.feed(OVMF_SILENT, 0, 2.0).press
    end = bp.feed(FALL_THROUGH, 0, 2.0 + MISS_GRACE + 1)
    assert end.done and not end.press and not end.reset and "restarted" in (end.message or "")
    assert not bp.feed(OVMF_SILENT, 0, 2.0 + MISS_GRACE + 5).press


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
    # From the CD boot line (0.5) on; the prompt, once it shows, is pressed until its dots stop.
    assert presses(results) == [0.5, 5.0, 5.4, 6.1, 6.5]
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
    assert "answered the boot prompt" in (done.message or "")  # the prompt showed and was pressed
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
    assert "no boot line from the firmware" in (results[2][1].message or "")  # type: ignore[attr-defined]
    assert results[-1][1].done  # type: ignore[attr-defined]


def test_bounded() -> None:
    bp = BootPrompt(0.0)
    bp.feed(FIRMWARE, 0, 1.0)
    end = bp.feed("", 0, WINDOW + 1)
    assert end.done and not end.answered and "stopped pressing" in (end.message or "")
