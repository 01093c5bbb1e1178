"""hack/bench.py's boot rows: `limapy start`/`stop` of the test image against the same argv run straight with
QEMU (A B A B pairs, medians). The same rows for the UEFI x86_64 and the aarch64 images (`boot-uefi`,
`boot-aarch64`: start only), and `resume`: resume to ready against the same instance's cold start."""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchlib import BOOT_TIMEOUT, ROOT, Row, check, median, say

if TYPE_CHECKING:
    from bench import Bench


#: bench group -> (build-test-image.sh options, instance name, what the rows say about the image)
KINDS = {
    "boot": ((), "bs", "test image"),
    "boot-uefi": (("--boot", "uefi"), "bu", "UEFI + GRUB, x86_64"),
    "boot-aarch64": (("--arch", "aarch64"), "ba", "UEFI + GRUB, aarch64"),
}


def bench_boot(self: Bench, kind: str = "boot") -> None:
    from limapy.agent.hostagent import PROBE_INTERVAL, READY_POLL

    options, name, what = KINDS[kind]
    tmpl = (self.template if kind == "boot" else None) or test_image_template(*options)
    inst = self.home / name
    _, cp = self.lp("create", "--name", name, tmpl, timeout=600)
    check(cp, "limapy create (test image)")
    # `start --dry-run` writes nothing: hack/prepare.py makes what a start makes (seed, ssh.config), prints the argv
    cp = subprocess.run([sys.executable, str(ROOT / "hack" / "prepare.py"), name], env=self.env, capture_output=True,
                        timeout=120)
    check(cp, "hack/prepare.py")
    argv = shlex.split(cp.stdout.decode().strip().splitlines()[-1])
    pristine = self.work / "pristine"
    pristine.mkdir(exist_ok=True)
    saved = ("disk", "cidata.iso", "ssh.config")
    for f in saved:
        shutil.copy2(inst / f, pristine / f)
    port = int(re.search(r"^\s*Port\s+(\d+)", (inst / "ssh.config").read_text(), re.M).group(1))  # type: ignore[union-attr]
    self.extra[kind] = {"argv": argv, "probe_interval_s": PROBE_INTERVAL, "runs": []}
    a_start: list[float] = []
    b_start: list[float] = []
    a_stop: list[float] = []
    b_stop: list[float] = []

    def keep_logs(run: str) -> None:  # for --keep: the guest's own timeline of each run
        for f in ("serial.log", "ha.stdout.log", "ha.stderr.log") if run.startswith("A") else ("serial.log",):
            if (inst / f).exists():
                shutil.copy2(inst / f, self.work / f"{run}.{f}")

    def restore(with_seed: bool) -> None:
        for f in ("qemu.pid", "qmp.sock", "ha.qmp.sock", "serial.sock", "serial.log", "ha.pid", "ssh.sock"):
            (inst / f).unlink(missing_ok=True)
        for f in saved if with_seed else ("disk",):
            shutil.copy2(pristine / f, inst / f)

    for i in range(self.pairs):
        # A: limapy
        restore(with_seed=False)
        load0 = os.getloadavg()[0]
        t_wall = time.time()
        dt, cp = self.lp("start", name, timeout=BOOT_TIMEOUT + 30)
        check(cp, "limapy start")
        if b"READY" not in cp.stderr + cp.stdout:
            raise RuntimeError("limapy start returned without READY")
        phases = ha_phases(inst / "ha.stdout.log", t_wall, t_wall + dt)
        keep_logs(f"A{i + 1}")
        t_stop = time.time()
        ds, cp = self.lp("stop", name, timeout=300)
        check(cp, "limapy stop")
        stop_phases = ha_stop_phases(inst / "ha.stdout.log", t_stop, t_stop + ds)
        a_start.append(dt)
        a_stop.append(ds)
        self.extra[kind]["runs"].append({"run": f"A{i + 1}", "start_s": round(dt, 2), "stop_s": round(ds, 2),
                                           "load1": round(load0, 2), "phases_s": phases,
                                           "stop_phases_s": stop_phases})
        say(f"A{i + 1} limapy start {dt:.1f} s, stop {ds:.2f} s; phases {phases}; stop phases {stop_phases}")
        # B: the same argv straight with QEMU
        restore(with_seed=True)
        load0 = os.getloadavg()[0]
        dt, first_ssh, ds = direct_boot(argv, inst, name, port, PROBE_INTERVAL, READY_POLL)
        keep_logs(f"B{i + 1}")
        b_start.append(dt)
        b_stop.append(ds)
        self.extra[kind]["runs"].append({"run": f"B{i + 1}", "start_s": round(dt, 2), "stop_s": round(ds, 2),
                                           "load1": round(load0, 2), "phases_s": {"ssh": round(first_ssh, 2)}})
        say(f"B{i + 1} direct QEMU {dt:.1f} s (first SSH {first_ssh:.1f} s), powerdown {ds:.2f} s")
    pair_ratios = [a / b for a, b in zip(a_start, b_start, strict=True)]
    own = [r["phases_s"].get("booting", 0.0) + r["start_s"] - r["phases_s"].get("ready", r["start_s"])
           for r in self.extra[kind]["runs"] if r["run"].startswith("A")]
    # READY minus the guest's first SSH answer (limapy's events), against the same gap of the direct boot
    # (boot-done minus first SSH): what the boot scripts, provisioning and the host agent add after sshd answers
    after_ssh = [r["phases_s"]["ready"] - r["phases_s"]["ssh"] for r in self.extra[kind]["runs"]
                 if r["run"].startswith("A") and "ready" in r["phases_s"] and "ssh" in r["phases_s"]]  # fmt: skip
    b_after_ssh = [max(dt - r["phases_s"]["ssh"], 0.0) for dt, r in zip(
        b_start, [r for r in self.extra[kind]["runs"] if r["run"].startswith("B")], strict=True)]  # fmt: skip
    self.extra[kind]["pair_ratios"] = [round(x, 3) for x in pair_ratios]
    self.extra[kind]["limapy_own_s"] = [round(x, 2) for x in own]
    start = Row(f"{kind}.start", kind, f"limapy start until READY ({what})", "s", median(a_start),
                median(b_start), "the planned argv with QEMU until boot-done over SSH", target="ratio<=1.05",
                samples=a_start, floor_samples=b_start, note=f"{self.pairs} A/B pairs")
    if kind != "boot":
        self.rows.append(start)
        return
    self.rows += [
        start,
        Row("boot.own", "boot", "limapy's own time per start (outside the guest)", "s", median(own),
            median(b_start), "the direct boot", target="ratio<=0.05", samples=own,
            note="launch to QEMU running + host agent ready to CLI return; immune to the guest's noise"),
        Row("boot.stop", "boot", "limapy stop (graceful) of a ready guest", "s", median(a_stop), median(b_stop),
            "QMP system_powerdown until QEMU exits", target="ratio<=1.2", samples=a_stop, floor_samples=b_stop),
        Row("boot.ready_after_ssh", "boot", "READY minus the guest's first SSH answer (limapy start)", "s",
            median(after_ssh) if after_ssh else None, median(b_after_ssh),
            "boot-done minus first SSH on the direct boot", target="value<=3", samples=after_ssh,
            floor_samples=b_after_ssh, note="the guest's work after sshd answers: boot scripts, provisioning"),
    ]




def test_image_template(*options: str) -> str:
    cp = subprocess.run([str(ROOT / "hack" / "build-test-image.sh"), *options], capture_output=True, text=True,
                        timeout=3600)
    if cp.returncode != 0 or not cp.stdout.strip():
        raise RuntimeError(f"hack/build-test-image.sh failed: {cp.stderr.strip()[-300:]}")
    return cp.stdout.strip().splitlines()[-1]


def ha_phases(log: Path, t_start: float, t_end: float) -> dict[str, float]:
    """Seconds from `limapy start` to each host-agent event (first of each phase), and to its return."""
    out: dict[str, float] = {}
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            ev = json.loads(line)
            t = datetime.datetime.fromisoformat(ev["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        phase = str(ev.get("phase") or "")
        if phase and phase not in out:
            out[phase] = round(t - t_start, 2)
    out["returned"] = round(t_end - t_start, 2)
    return out


def ha_stop_phases(log: Path, t_start: float, t_end: float) -> dict[str, float]:
    """Seconds from `limapy stop` to the host agent's power-down request (`stopping`: the CLI's start-up, the
    signal, the guest services stopped), to its `exiting` event (the guest powered off, QEMU and its helpers
    stopped), and to the CLI's return (the agent's exit noticed)."""
    out: dict[str, float] = {}
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            ev = json.loads(line)
            t = datetime.datetime.fromisoformat(ev["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        phase = {"stopping": "powerdown", "exiting": "agent_done"}.get(str(ev.get("phase") or ""))
        if phase and t >= t_start - 0.01 and phase not in out:
            out[phase] = round(t - t_start, 2)
    out["returned"] = round(t_end - t_start, 2)
    return out


def qmp(sock: Path, command: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock))
        f = s.makefile("rwb")
        f.readline()  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}).encode() + b"\n")
            f.flush()
            while True:  # skip events until the reply
                reply = json.loads(f.readline() or b"{}")
                if "return" in reply or "error" in reply or not reply:
                    break


def direct_boot(
    argv: list[str], inst: Path, name: str, port: int, interval: float, ready_poll: float
) -> tuple[float, float, float]:
    """(launch to boot-done, launch to first SSH answer, powerdown to exit) of the argv run straight.

    Polls as the host agent does: every `interval` until SSH answers, then every `ready_poll`."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} of the planned boot is taken; run again")
    probe = [
        "ssh", "-F", str(inst / "ssh.config"), "-o", "ControlMaster=no", "-o", "ControlPath=none",
        "-o", "ConnectTimeout=5", f"lima-{name}", "cat /run/lima-boot-done 2>/dev/null || true",
    ]
    err = open(inst / "direct.stderr.log", "wb")
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    first_ssh = 0.0
    try:
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"QEMU exited ({p.returncode}); see {inst / 'direct.stderr.log'}")
            if time.perf_counter() - t0 > BOOT_TIMEOUT:
                raise RuntimeError(f"direct boot not ready after {BOOT_TIMEOUT:.0f} s")
            try:
                cp = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                time.sleep(interval)
                continue
            if cp.returncode != 255:
                if not first_ssh:
                    first_ssh = time.perf_counter() - t0
                if cp.stdout.strip():
                    ready = time.perf_counter() - t0
                    break
            time.sleep(ready_poll if first_ssh else interval)
        t1 = time.perf_counter()
        qmp(inst / "qmp.sock", "system_powerdown")
        p.wait(timeout=120)
        return ready, first_ssh, time.perf_counter() - t1
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        err.close()
