#!/usr/bin/env python3
"""A stand-in for systemd's notification socket: binds a Unix datagram socket at argv[1]
("@name" = abstract) and prints each datagram received as one JSON string per line."""
import json
import socket
import sys

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\0" + path[1:] if path.startswith("@") else path)
print(json.dumps("LISTENING"), flush=True)
while True:
    data = sock.recv(65536)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
