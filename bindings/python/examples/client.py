"""A client: sends each argument (or each line of stdin) and prints the reply.

    python examples/client.py ws://127.0.0.1:8765/ hello world
    echo '{"a": 1}' | python examples/client.py ws://127.0.0.1:8765/ --json

Exits 0 after a clean close, 1 when the server is unreachable, refuses the
handshake or closes with an error.
"""

import argparse
import sys

import libws


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("messages", nargs="*", help="messages to send (default: lines of stdin)")
    parser.add_argument("--json", action="store_true", help="send each message as JSON (send_json/recv_json)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply")
    args = parser.parse_args()

    messages = args.messages or (line.rstrip("\n") for line in sys.stdin)
    try:
        with libws.connect(args.url, timeout=args.timeout) as ws:
            host, port = ws.remote_address or ("?", 0)
            print(f"connected to {host}:{port}", flush=True)
            for text in messages:
                if args.json:
                    ws.send_json({"text": text})
                    reply = ws.recv_json(timeout=args.timeout)
                else:
                    ws.send(text)
                    reply = ws.recv(timeout=args.timeout)
                print(f"< {reply}", flush=True)
        print(f"closed: {ws.close_code}", flush=True)
        return 0
    except libws.HandshakeError as e:
        print(f"handshake refused: HTTP {e.status}", file=sys.stderr)
    except libws.ConnectionClosedError as e:
        print(f"connection closed: {e.code} {e.reason}", file=sys.stderr)
    except (libws.ConnectError, libws.TimeoutError) as e:
        print(f"cannot connect: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
