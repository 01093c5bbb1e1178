"""Lima's rules for ports, port forwards and networks (pkg/limayaml/validate.go lines 307-389 and 512-584)."""

from __future__ import annotations

import re
from typing import Any

from limapy.config.golang import go_q
from limapy.config.yamlread import NodePath

UNIX_PATH_MAX = 108  # Linux and Windows hosts (macOS: 104)


class NetRules:
    """Mixed into validate._V: `cfg` is the filled configuration, `add` records a problem."""

    cfg: dict[str, Any]

    def add(self, path: NodePath, msg: str) -> None:
        raise NotImplementedError

    def port(self, path: NodePath, label: str, port: Any) -> None:
        """Lima's validatePort (the schema has already refused non-integers)."""
        if not isinstance(port, int) or isinstance(port, bool):
            self.add(path, f"field `{label}` must be an integer")
        elif port < 0:
            self.add(path, f"field `{label}` must be > 0")
        elif port == 0:
            self.add(path, f"field `{label}` must be set")
        elif port == 22:
            self.add(path, f"field `{label}` must not be 22")
        elif port > 65535:
            self.add(path, f"field `{label}` must be < 65536")

    def port_forwards(self) -> None:
        """Lima's portForwards rules, in Lima's order (on a filled rule: ranges and IPs are set)."""
        for i, pf in enumerate(self.cfg.get("portForwards") or []):
            if not isinstance(pf, dict):
                continue
            f = f"portForwards[{i}]"
            at: NodePath = ("portForwards", i)
            gsock, hsock = pf.get("guestSocket") or "", pf.get("hostSocket") or ""
            grange = _port_range(pf.get("guestPortRange"))
            hrange = _port_range(pf.get("hostPortRange"))
            if pf.get("guestIPMustBeZero") and pf.get("guestIP") != "0.0.0.0":
                self.add((*at, "guestIPMustBeZero"), f"field `{f}.guestIPMustBeZero` can only be true when field `{f}.guestIP` is 0.0.0.0")
            for side, sock, rng in (("guest", gsock, grange), ("host", hsock, hrange)):
                port = pf.get(f"{side}Port")
                if port:
                    if sock:
                        self.add((*at, f"{side}Port"), f"field `{f}.{side}Port` must be 0 when field `{f}.{side}Socket` is set")
                    if port != rng[0]:
                        self.add((*at, f"{side}Port"), f"field `{f}.{side}Port` must match field `{f}.{side}PortRange[0]`")
                    self.port((*at, f"{side}Port"), f"{f}.{side}Port", port)
            for j in (0, 1):
                self.port((*at, "guestPortRange"), f"{f}.guestPortRange[{j}]", grange[j])
                if not hsock:
                    self.port((*at, "hostPortRange"), f"{f}.hostPortRange[{j}]", hrange[j])
            ints = all(isinstance(v, int) for v in (*grange, *hrange))
            if ints and grange[0] > grange[1]:
                self.add((*at, "guestPortRange"), f"field `{f}.guestPortRange[1]` must be greater than or equal to field `{f}.guestPortRange[0]`")
            if ints and hrange[0] > hrange[1]:
                self.add((*at, "hostPortRange"), f"field `{f}.hostPortRange[1]` must be greater than or equal to field `{f}.hostPortRange[0]`")
            if gsock:
                if not str(gsock).startswith("/"):
                    self.add((*at, "guestSocket"), f"field `{f}.guestSocket` must be an absolute path, but is {go_q(gsock)}")
                if not hsock and ints and hrange[1] - hrange[0] > 0:
                    self.add((*at, "guestSocket"), f"field `{f}.guestSocket` can only be mapped to a single port or socket. not a range")
            if hsock:
                if ints and not gsock and grange[1] - grange[0] > 0:
                    self.add((*at, "hostSocket"), f"field `{f}.hostSocket` can only be mapped from a single port or socket. not a range")
            elif ints and grange[1] - grange[0] != hrange[1] - hrange[0]:
                self.add((*at, "hostPortRange"), f"field `{f}.hostPortRange` must specify the same number of ports as field `{f}.guestPortRange`")
            if len(str(hsock)) >= UNIX_PATH_MAX:
                self.add((*at, "hostSocket"), f"field `{f}.hostSocket` must be less than UNIX_PATH_MAX={UNIX_PATH_MAX} characters, but is {len(str(hsock))}")
            if pf.get("proto") not in ("tcp", "udp", "any"):
                self.add((*at, "proto"), f"field `{f}.proto` must be `tcp`, `udp`, or `any`")
            for sock in (gsock, hsock):  # Lima checks (and reports) each side
                if pf.get("reverse") and not sock:
                    self.add((*at, "reverse"), f"field `{f}.reverse` must be false")

    def networks(self) -> None:
        seen: dict[str, int] = {}
        for i, n in enumerate(self.cfg.get("networks") or []):
            if not isinstance(n, dict):
                continue
            label = f"networks[{i}]"
            kinds = [k for k in ("lima", "socket", "vzNAT") if n.get(k)]
            if not kinds:
                self.add(("networks", i), f"field `{label}.lima` or  field `{label}.socket must be set")
            for a, b in (("lima", "socket"), ("lima", "vzNAT"), ("socket", "vzNAT")):
                if a in kinds and b in kinds:
                    self.add(("networks", i), f"field `{label}.{a}` and field `{label}.{b}` are mutually exclusive")
            mac = n.get("macAddress")
            if mac and not re.fullmatch(r"(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}", str(mac)):
                self.add(("networks", i, "macAddress"), f"field `{label}.macAddress` must be a 48 bit (6 bytes) MAC address; actual length of {go_q(mac)} is invalid")
            iface = str(n.get("interface") or "")
            if len(iface) >= 16:
                self.add(("networks", i, "interface"), f"field `{label}.interface` must be less than 16 bytes, but is {len(iface)} bytes: {go_q(iface)}")
            if re.search(r"[\s/]", iface):
                self.add(("networks", i, "interface"), f"field `{label}.interface` must not contain whitespace or slashes")
            if iface == "eth0":
                self.add(("networks", i, "interface"), f"field `{label}.interface` must not be set to \"eth0\" because it is reserved for slirp")
            if iface in seen:
                self.add(("networks", i, "interface"), f"field `{label}.interface` value {go_q(iface)} has already "
                         f"been used by field `networks[{seen[iface]}].interface`")  # fmt: skip
            seen[iface] = i


def _port_range(value: Any) -> list[Any]:
    if isinstance(value, list) and len(value) == 2:
        return list(value)
    return [0, 0]
