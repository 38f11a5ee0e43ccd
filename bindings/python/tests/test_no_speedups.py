"""libws without its C extension (a build where Python's headers were
missing): the package still imports, and libws.asyncio runs on the
event-loop path through ctypes."""

import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    sys.modules["libws._speedups"] = None  # importing it fails, as if never built
    import libws.asyncio as lwa
    assert lwa._fast is None and not lwa._session, (lwa._fast, lwa._session)

    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"

    asyncio.run(asyncio.wait_for(main(), 20))
    print("echoed")
    """
)


def test_asyncio_imports_and_echoes_without_speedups():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 0 and "echoed" in r.stdout, r.stdout + r.stderr
