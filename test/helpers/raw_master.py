#!/usr/bin/env python3
"""Another Dynamixel master, written independently of reflex: opens a serial device the
way any program would (termios, raw, 1 Mbaud), sends the hex packet given in argv[2], and
prints the hex of whatever comes back within 200 ms."""
import os
import select
import sys
import termios
import time
import tty

fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
attrs = termios.tcgetattr(fd)
attrs[4] = attrs[5] = termios.B1000000
termios.tcsetattr(fd, termios.TCSANOW, attrs)
os.write(fd, bytes.fromhex(sys.argv[2]))
got = b""
deadline = time.monotonic() + 0.2
while time.monotonic() < deadline:
    r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    if r:
        got += os.read(fd, 4096)
print(" ".join(f"{b:02X}" for b in got))
