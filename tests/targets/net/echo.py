"""Test peer for network faults: TCP echo on the given ports, and a UDP counter.

    python3 echo.py TCP_PORT... [--udp PORT --count-port PORT]

Echoes one message per TCP connection. Counts the datagrams arriving on the UDP port and
answers the current count to any TCP connection on the count port. Prints `ready` when every
socket listens. Standard library only.
"""
import socket
import sys
import threading


def serve_echo(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    return s


def echo_loop(s):
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(2)
            c.sendall(c.recv(1024))
        except OSError:
            pass
        finally:
            c.close()


def main():
    args = sys.argv[1:]
    udp = count_port = None
    if "--udp" in args:
        i = args.index("--udp")
        udp = int(args[i + 1])
        count_port = int(args[args.index("--count-port") + 1])
        args = args[:i]
    sockets = [serve_echo(int(p)) for p in args]
    received = [0]
    if udp is not None:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", udp))

        def count():
            while True:
                u.recv(2048)
                received[0] += 1

        counter = serve_echo(count_port)

        def report():
            while True:
                c, _ = counter.accept()
                c.sendall(str(received[0]).encode())
                c.close()

        threading.Thread(target=count, daemon=True).start()
        threading.Thread(target=report, daemon=True).start()
    for s in sockets:
        threading.Thread(target=echo_loop, args=(s,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


main()
