"""``f2p-view`` in a real browser (issue 47): a bag of a real failure, shown by rerun's web viewer,
opened and screenshotted by headless Chromium.

1. The simulated robot's graph (``f2p-bringup sim``, as processes) runs transport-3 seed 1000
   through the example client: the shipped pre-trained model fails a step and the failure is
   recorded; the graph is stopped, its bag closed.
2. ``view_bag`` turns the bag into an ``.rrd`` (timed), ``serve`` starts the web viewer on
   127.0.0.1.
3. Headless Chromium (Debian's ``chromium-headless-shell``; ANGLE on SwiftShader for WebGL2, as
   no GPU is here) opens the page; over the DevTools protocol the script waits until the viewer
   has loaded (its WebAssembly compiles in real time) and takes the screenshot.

On this machine (2 cores, SwiftShader) the viewer with a recording loaded keeps the page's thread
busy for minutes and no screenshot came within 10 minutes; it is meant for a machine whose
browser has a GPU. Writes ``benchmarks/results/view.{json,md}`` and ``view.png``: the
conversion time, messages per topic, failures in the bag, whether the page rendered (the
screenshot is not blank: distinct colours), the screenshot's size. Needs Chromium
(``apt-get install chromium-headless-shell``); ~3 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "f2p_client.py"
CHROMIUM = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


@dataclass
class ViewBrowserConfig:
    """bag: show this bag instead of recording one; width/height: the browser window;
    budget_ms: the most the viewer may take to load (its WebAssembly compiles on the CPU);
    settle_s: seconds after it loaded before the screenshot; work: scratch (None: temporary)."""

    bag: Path | None = None
    width: int = 960
    height: int = 540
    budget_ms: int = 600_000
    settle_s: float = 30.0
    work: Path | None = None
    write: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record_a_failure(work: Path, say=print) -> Path:
    """The sim graph runs one task the shipped model fails; its bag."""
    env = {**os.environ, "ROS_HOME": str(work / "ros_home")}
    runner = subprocess.Popen([sys.executable, "-m", "f2p_bringup.runner", "sim", "--log-dir", str(work / "logs")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in runner.stdout:
            if "graph running" in line:
                break
        else:
            raise RuntimeError("the sim graph did not start")
        say("[view] graph running; transport-3 seed 1000 with the pre-trained model")
        run = subprocess.run([sys.executable, str(EXAMPLE), "run", "--reset", "transport:3:1000"], capture_output=True,
                             text=True, env=env, timeout=600)
        say(f"[view] task: {run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:]}")
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(60)
    bags = sorted((work / "ros_home" / "f2p" / "bags").glob("f2p_*"))
    if not bags:
        raise RuntimeError("the graph wrote no bag")
    return bags[-1]


def screenshot(url: str, png: Path, cfg: ViewBrowserConfig) -> dict:
    """Open ``url`` in headless Chromium and, once rerun's viewer has loaded (its WebAssembly
    compiled in real time: the page no longer says "Loading"), screenshot it, over the DevTools
    protocol."""
    import base64
    import re
    import urllib.request

    from websockets.sync.client import connect
    exe = next((shutil.which(c) for c in CHROMIUM if shutil.which(c)), None)
    if exe is None:
        raise RuntimeError("no Chromium: apt-get install chromium-headless-shell")
    profile = Path(tempfile.mkdtemp(prefix="f2p_chromium_"))
    proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                             "--ignore-gpu-blocklist", "--enable-webgl", "--disable-features=WebGPU,Vulkan",
                             f"--window-size={cfg.width},{cfg.height}", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"DevTools listening on ws://127.0.0.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            raise RuntimeError("Chromium did not start its DevTools endpoint")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        page = json.loads(urllib.request.urlopen(req, timeout=30).read())
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            ids = iter(range(1, 1 << 30))

            def call(method, timeout=120.0, **params):
                i = next(ids)
                ws.send(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=timeout))
                    if msg.get("id") == i:
                        return msg.get("result", {})

            def left() -> float:
                return max(1.0, cfg.budget_ms / 1000 - (time.monotonic() - t0))

            call("Page.navigate", url=url)        # the query (?url=<the recording>) kept whole
            loaded_s, error = None, ""
            try:                                  # the page's thread may be busy for minutes under SwiftShader
                while time.monotonic() - t0 < cfg.budget_ms / 1000:
                    canvas = call("Runtime.evaluate", timeout=left(), returnByValue=True,
                                  expression="document.querySelectorAll('canvas').length").get("result", {})
                    if canvas.get("value", 0):        # the viewer's WebAssembly runs and draws
                        loaded_s = time.monotonic() - t0
                        break
                    time.sleep(1.0)
                time.sleep(cfg.settle_s)             # the first frames: the recording streams in, the views draw
                data = call("Page.captureScreenshot", timeout=left(), format="png")["data"]
                png.write_bytes(base64.b64decode(data))
            except TimeoutError:
                error = f"the page did not answer within the {cfg.budget_ms / 1000:.0f} s budget"
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(profile, ignore_errors=True)
    return {"chromium": Path(exe).name, "viewer_loaded_s": None if loaded_s is None else round(loaded_s, 1),
            "seconds": round(time.monotonic() - t0, 1), "error": error}


def distinct_colours(png: Path) -> int:
    from PIL import Image
    with Image.open(png) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def run(cfg: ViewBrowserConfig, say=print) -> dict:
    from f2p_viz.view_node import ViewConfig, serve, view_bag
    work = Path(cfg.work or tempfile.mkdtemp(prefix="f2p_view_"))
    work.mkdir(parents=True, exist_ok=True)
    bag = cfg.bag or record_a_failure(work, say)
    t = time.monotonic()
    view = view_bag(ViewConfig(bag=bag, out=work / "view.rrd", serve=False))
    convert_s = time.monotonic() - t
    say(f"[view] {sum(view.messages.values())} messages, {view.failures} failure(s) -> {view.rrd} in {convert_s:.1f} s")
    vcfg = ViewConfig(bag=bag, out=view.rrd, web_port=_free_port(), grpc_port=_free_port())
    proc, url = serve(vcfg, view.rrd)
    png = work / "view.png"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", vcfg.web_port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the web viewer did not start") from None
                time.sleep(0.2)
        shot = screenshot(url, png, cfg)
    finally:
        proc.terminate()
        proc.wait(10)
    colours = distinct_colours(png) if png.is_file() else 0
    report = {"bag": str(bag), "messages": view.messages, "failures": view.failures, "unreadable": view.unreadable,
              "convert_s": round(convert_s, 2), "rrd_mb": round(view.rrd.stat().st_size / 1e6, 2), "url": url,
              "screenshot": shot, "distinct_colours": colours,
              "rendered": shot["viewer_loaded_s"] is not None and colours > 1000,
              "window": [cfg.width, cfg.height], "machine": f"{os.cpu_count()} cores, no GPU (SwiftShader)"}
    if cfg.write and png.is_file():
        RESULTS.mkdir(exist_ok=True)
        shutil.copyfile(png, RESULTS / "view.png")
        (RESULTS / "view.json").write_text(json.dumps(report, indent=1) + "\n")
        (RESULTS / "view.md").write_text(
            f"# f2p-view in headless Chromium\n\n![f2p-view](view.png)\n\n- a real bag of the sim graph: "
            f"{sum(view.messages.values())} messages, {view.failures} failure(s); to .rrd in {report['convert_s']} s "
            f"({report['rrd_mb']} MB)\n- rerun's web viewer on 127.0.0.1, {shot['chromium']} with ANGLE/SwiftShader: "
            f"the viewer loaded after {shot['viewer_loaded_s']} s, screenshot after {shot['seconds']} s, {colours} "
            f"distinct colours (rendered: {report['rendered']})\n")
    say(json.dumps({k: v for k, v in report.items() if k != "screenshot"}))
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bag", type=Path, default=None, help="show this bag instead of recording one")
    p.add_argument("--work", type=Path, default=None)
    a = p.parse_args(argv)
    r = run(ViewBrowserConfig(bag=a.bag, work=a.work))
    return 0 if r["rendered"] else 1


if __name__ == "__main__":
    sys.exit(main())
