"""Test client for network faults.

    python3 probe.py tcp HOST PORT TIMEOUT_S     -> ok | timeout | refused | error:<name>, and seconds
    python3 probe.py udp HOST PORT N             -> sends N datagrams, 1 ms apart
    python3 probe.py count HOST PORT             -> the peer's UDP count
"""
import socket
import sys
import time

what, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "tcp":
    start = time.monotonic()
    s = socket.socket()
    s.settimeout(float(sys.argv[4]))
    try:
        s.connect((host, port))
        s.sendall(b"ping")
        result = "ok" if s.recv(16) == b"ping" else "error:echo"
    except socket.timeout:
        result = "timeout"
    except ConnectionRefusedError:
        result = "refused"
    except OSError as e:
        result = "error:" + type(e).__name__
    print(result, round(time.monotonic() - start, 3))
elif what == "udp":
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(int(sys.argv[4])):
        try:
            u.sendto(b"x" * 32, (host, port))
        except OSError:
            pass
        time.sleep(0.001)
    print("sent")
elif what == "count":
    s = socket.create_connection((host, port), timeout=5)
    print(s.recv(32).decode())
