"""websocket-chat in a real browser: headless Chromium, driven through the
DevTools protocol (with Python's `websockets`), and a second member in Python.

usage: browser_chat.py CHROMIUM ADDR SCREENSHOT.png

1. Chromium opens http://ADDR/ and its page joins the room (its status line
   says "connected");
2. a Python member joins and sends a line: the line must appear in the
   page's list;
3. the page sends a line through its own form: the Python member must
   receive it;
4. a screenshot of the page is written to SCREENSHOT.png.

Every wait is bounded; prints "ok" at the end. Chromium runs with a fresh
profile and no background networking (this machine has no internet).
"""

import asyncio
import base64
import json
import shutil
import subprocess
import sys
import tempfile

import websockets

WAIT = 20  # seconds, for any one step


class DevTools:
    """A DevTools protocol connection with one attached page session."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.session = None
        self.events = []

    async def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        await self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
            if "method" in reply:
                self.events.append(reply["method"])
            elif reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def event(self, method):
        """Waits for the page's next event `method` (or one already seen)."""
        while method not in self.events:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
            if "method" in msg:
                self.events.append(msg["method"])
        self.events.remove(method)

    async def eval(self, expression):
        """Evaluates in the page, awaiting a promise; the value."""
        r = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"page error: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def until(self, condition):
        """Resolves once the page's `condition` (a JS expression) holds,
        watching the DOM for changes rather than polling."""
        js = f"""new Promise(resolve => {{
            const done = () => {{ if ({condition}) {{ resolve(true); return true; }} return false; }};
            if (!done()) new MutationObserver(done).observe(document,
                {{subtree: true, childList: true, characterData: true}});
        }})"""
        return await asyncio.wait_for(self.eval(js), WAIT)


async def devtools_url(proc):
    """The browser's DevTools address, from the line Chromium prints once it
    listens; the rest of its output is drained in the background."""
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), WAIT)
        if not line:
            raise RuntimeError(f"chromium exited with {await proc.wait()}")
        text = line.decode(errors="replace").strip()
        if text.startswith("DevTools listening on "):
            asyncio.get_running_loop().create_task(drain(proc.stderr))
            return text.removeprefix("DevTools listening on ")


async def drain(stream):
    while await stream.readline():
        pass


async def main(chromium, addr, screenshot):
    profile = tempfile.mkdtemp(prefix="weft-chromium-")
    proc = await asyncio.create_subprocess_exec(
        *[
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--window-size=800,600",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = await devtools_url(proc)
        async with websockets.connect(url, max_size=None) as ws:
            dt = DevTools(ws)
            target = await dt.call("Target.createTarget", {"url": "about:blank"})
            attached = await dt.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            dt.session = attached["sessionId"]
            await dt.call("Page.enable")
            await dt.call("Page.navigate", {"url": f"http://{addr}/"})
            await dt.event("Page.loadEventFired")
            await dt.until("document.getElementById('status')?.textContent === 'connected'")

            async with websockets.connect(f"ws://{addr}/ws") as member:
                line = "hello from Python, héllo wörld"
                await member.send(line)
                await dt.until(
                    "[...document.querySelectorAll('#log li')]"
                    f".some(li => li.textContent === {json.dumps(line)})"
                )
                # The room echoes to its sender too: skip our own line.
                assert await asyncio.wait_for(member.recv(), WAIT) == line

                typed = "hello from Chromium"
                await dt.eval(
                    f"document.getElementById('line').value = {json.dumps(typed)};"
                    "document.getElementById('form').requestSubmit(); true"
                )
                got = await asyncio.wait_for(member.recv(), WAIT)
                assert got == typed, got
                await dt.until(
                    "[...document.querySelectorAll('#log li')]"
                    f".some(li => li.textContent === {json.dumps(typed)})"
                )

            shot = await dt.call("Page.captureScreenshot", {"format": "png"})
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            await dt.call("Browser.close", session=False)
    finally:
        try:
            await asyncio.wait_for(proc.wait(), WAIT)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
