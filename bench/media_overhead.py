#!/usr/bin/env python3
"""Media pipeline overhead and density.

Needs a running `onair up --demo false --register-per-ip-per-hour 1000` (release build) on the
default ports (the script registers a streamer per stream).

Overhead: a 20 s 720p30 FLV (x264 veryfast + AAC, what OBS sends) is published with `-re -c copy`
through RTMP into the worker; the CPU-seconds of the worker process and of its ffmpeg child are
read from /proc. Then the very same ffmpeg command line (read from /proc/<pid>/cmdline) is run by
hand on the same file (`-re -f flv -i file`), and its CPU-seconds measured the same way.
Density: 1..N concurrent publishers of that file; the largest N whose every encoder keeps
speed >= 1.0 (the worker's `onair_media_encode_speed`).

Usage: bench/media_overhead.py [MAX_STREAMS]
"""
import json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

API, RTMP, MEDIA = "http://127.0.0.1:8080", "rtmp://127.0.0.1:1935/live", "http://127.0.0.1:8090"
MAX = int(sys.argv[1]) if len(sys.argv) > 1 else 4
TICK = os.sysconf("SC_CLK_TCK")


def call(method, path, body=None, token=None):
    req = urllib.request.Request(API + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    try:
        return json.load(urllib.request.urlopen(req))
    except urllib.error.HTTPError as e:
        return json.load(e)


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def streamer(i):
    name = f"ovh{int(time.time())}x{i}"
    tok = call("POST", "/api/users/register", {"username": name, "email": f"{name}@b.example", "password": "correct horse battery"})["access_token"]
    s = call("POST", "/api/streams/start", {"title": f"bench {i}", "category": "software"}, tok)
    return tok, s["stream"]["id"], s["ingest"]["stream_key"]


work = tempfile.mkdtemp()
src = os.path.join(work, "in.flv")
subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi",
                "-i", "sine=frequency=440:sample_rate=48000", "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
                "-b:v", "3000k", "-c:a", "aac", "-f", "flv", src], check=True)
worker = int(subprocess.run(["pgrep", "-n", "-x", "onair"], capture_output=True, text=True).stdout.split()[0])

# --- overhead -------------------------------------------------------------
tok, sid, key = streamer(0)
w0 = cpu(worker)
pub = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", src, "-c", "copy", "-f", "flv", f"{RTMP}/{key}"])
enc, cmdline, enc_cpu = None, None, 0.0
while pub.poll() is None:
    kids = [k for k in children(worker) if b"ffmpeg" in open(f"/proc/{k}/cmdline", "rb").read()]
    if kids:
        enc = kids[0]
        cmdline = open(f"/proc/{enc}/cmdline", "rb").read().split(b"\0")[:-1]
        try:
            enc_cpu = cpu(enc)
        except FileNotFoundError:
            pass
    time.sleep(0.2)
time.sleep(2)
pipeline_worker = cpu(worker) - w0
call("POST", f"/api/streams/{sid}/stop", {}, tok)
pipeline = pipeline_worker + enc_cpu

args = [a.decode() for a in cmdline]
i = args.index("pipe:0")
args[i - 2:i + 1] = ["-re", "-f", "flv", "-i", src]
out_dir = os.path.join(work, "byhand")
os.makedirs(out_dir)
old_dir = re.match(r"(.*)/%v/index\.m3u8$", [a for a in args if a.endswith("/%v/index.m3u8")][0]).group(1)
args = [a.replace(old_dir, out_dir) for a in args]
for d in re.findall(r"name:(\w+)", " ".join(args)):
    os.makedirs(os.path.join(out_dir, d), exist_ok=True)
start = os.times()
subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
end = os.times()
by_hand = (end.children_user - start.children_user) + (end.children_system - start.children_system)
print(f"overhead    pipeline {pipeline:.1f} CPU-s (worker {pipeline_worker:.1f} + ffmpeg {enc_cpu:.1f}) vs ffmpeg by hand {by_hand:.1f} CPU-s "
      f"for 20 s of 720p30 -> 720p/480p/360p: {100 * (pipeline / by_hand - 1):+.1f}%  ({pipeline / 20:.2f} vs {by_hand / 20:.2f} CPU-s per s)")

# --- density --------------------------------------------------------------
best = 0
for n in range(1, MAX + 1):
    sessions = [streamer(100 * n + k) for k in range(n)]
    pubs = [subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", src, "-t", "25", "-c", "copy",
                              "-f", "flv", f"{RTMP}/{k}"]) for _, _, k in sessions]
    time.sleep(15)
    metrics = urllib.request.urlopen(MEDIA + "/metrics").read().decode()
    speeds = [float(m) for m in re.findall(r'onair_media_encode_speed\{stream_id="[^"]+"\} ([0-9.]+)', metrics)]
    for p in pubs:
        p.wait()
    for tok, sid, _ in sessions:
        call("POST", f"/api/streams/{sid}/stop", {}, tok)
    ok = len(speeds) >= n and min(speeds) >= 0.99
    print(f"density     {n} stream(s): encode speeds {sorted(speeds)} -> {'real time' if ok else 'falls behind'}")
    if not ok:
        break
    best = n
    time.sleep(3)
print(f"density     {best} concurrent 720p three-rendition stream(s) in real time on this machine")
shutil.rmtree(work, ignore_errors=True)
