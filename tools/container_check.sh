#!/usr/bin/env bash
# Builds deploy/Dockerfile and runs what the README's Deployment section promises, with a real container
# engine, printing one line per check (and writing them to $OUT/container_check.txt when OUT is set):
#   build            docker build -f deploy/Dockerfile -t wildpose:cpu .   (time, image size)
#   demo             docker run --rm wildpose:cpu demo                     (the bundled clip, every frame received)
#   another uid      docker run --user 12345:0 wildpose:cpu demo    (an arbitrary uid, as OpenShift runs images)
#   cache volume     -v NAME:/var/cache/wildpose writable by the image's user
#   run + subscribe  docker run -d --shm-size 1g -p 127.0.0.1:PORT:5555 wildpose:cpu run --source cam0=<bundled clip>
#                    --loop --publish tcp://0.0.0.0:5555, and `wildpose subscribe` on this host counts poses
#                    (with DETECTOR=path/to/yolox_nano.onnx mounted read-only and passed as --detector)
#   metrics          the same run's --metrics 0.0.0.0:9100 through -p: /livez, /readyz and /metrics
#   proxy, web       `wildpose proxy` and `wildpose web` in containers of their own, as compose.yaml runs them,
#                    a subscriber through the proxy, and the viewer's page and WebSocket
#   docker stop      SIGTERM to the container's pid 1: a clean stop with final stats, exit status 0
#
#   ENGINE            the container command (default: docker, else podman). This project's CPU machines:
#                     ENGINE="podman --runtime runc" RUN_FLAGS="--ulimit nofile=1024:1024 --ulimit nproc=1000:1000"
#   LOCAL_BASE=1      no Docker Hub here: build a stand-in for python:3.11-slim-bookworm first (Debian bookworm
#                     by debootstrap, Debian's Python 3.11 in a venv at /usr/local, this host's CA certificates)
#   TORCH_WHEEL=FILE  no download.pytorch.org here: serve this CPU wheel and its dependencies on 127.0.0.1
#                     as the Dockerfile's TORCH_INDEX
#   DETECTOR=FILE     a YOLOX ONNX file to mount (containers here cannot download Megvii's)
#   SUBSCRIBER        the host's wildpose command (default: .venv/bin/wildpose)
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-$(command -v docker >/dev/null && echo docker || echo podman)}
RUN_FLAGS=${RUN_FLAGS:-}
SUBSCRIBER=${SUBSCRIBER:-.venv/bin/wildpose}
IMAGE=${IMAGE:-wildpose:cpu}
CLIP=/opt/wildpose/media/demo-synthpose-131_02.mp4
WORK=$(mktemp -d)
RESULTS=$WORK/results.txt
SERVER_PID=""
remove_containers() {
    for name in wildpose-check wildpose-check-proxy wildpose-check-web; do
        $ENGINE rm -f "$name" >/dev/null 2>&1 || true
    done
}
cleanup() {
    remove_containers
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "${OUT:-}" ] && cp "$RESULTS" "$OUT/container_check.txt" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
remove_containers  # left by an interrupted check
say() { echo "$*" | tee -a "$RESULTS"; }
fail() { say "FAILED: $*"; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

say "# container check, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)'), $($ENGINE --version)"

if [ "${LOCAL_BASE:-0}" = 1 ]; then
    say "base: a stand-in for python:3.11-slim-bookworm (debootstrap bookworm, Debian's python3.11 venv at /usr/local)"
    rootfs=$WORK/rootfs
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
        || { tail -5 "$WORK/debootstrap.log"; fail "debootstrap"; }
    base_log=$WORK/base.log
    {
        cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
        chroot "$rootfs" apt-get update -q
        chroot "$rootfs" apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" || true
        chroot "$rootfs" update-ca-certificates
        chroot "$rootfs" python3 -m venv /usr/local
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
        tar -C "$rootfs" -c . | $ENGINE import --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["python3"]' \
            - docker.io/library/python:3.11-slim-bookworm
    } >"$base_log" 2>&1 || { tail -5 "$base_log"; fail "the stand-in base image"; }
fi

BUILD_ARGS=()
[ "${LOCAL_BASE:-0}" = 1 ] && BUILD_ARGS+=(--pull=never)  # the stand-in, not Docker Hub's
if [ -n "${TORCH_WHEEL:-}" ]; then
    index=$WORK/index
    python3 -m pip download -q --only-binary :all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
        -d "$WORK/wheels" "$TORCH_WHEEL" 2>/dev/null
    python3 - "$WORK/wheels" "$index" <<'EOF'
import html, pathlib, re, sys
wheels, root = map(pathlib.Path, sys.argv[1:])
for wheel in wheels.glob("*.whl"):
    project = root / re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    project.mkdir(parents=True, exist_ok=True)
    (project / wheel.name).symlink_to(wheel.resolve())
for project in root.iterdir():
    links = "".join(f'<a href="{html.escape(w.name)}">{html.escape(w.name)}</a>\n' for w in project.glob("*.whl"))
    (project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
EOF
    port=$(free_port)
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$index" >/dev/null 2>&1 &
    SERVER_PID=$!
    sleep 1
    BUILD_ARGS+=(--network host --build-arg "TORCH_INDEX=http://127.0.0.1:$port/")
    say "torch: $(basename "$TORCH_WHEEL") and its dependencies from a local index"
fi

start=$(date +%s)
# shellcheck disable=SC2086
$ENGINE build $RUN_FLAGS "${BUILD_ARGS[@]}" -f deploy/Dockerfile -t "$IMAGE" . \
    >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; fail "build"; }
say "build: ok in $(( $(date +%s) - start )) s, image $($ENGINE image inspect "$IMAGE" --format '{{.Size}}' \
    | awk '{printf "%.2f GB", $1 / 1e9}')"

# shellcheck disable=SC2086
$ENGINE run --rm $RUN_FLAGS "$IMAGE" demo >"$WORK/demo.out" 2>"$WORK/demo.err" || { tail -5 "$WORK/demo.err"; fail "demo"; }
say "demo: $(grep '^# received' "$WORK/demo.out" | sed 's/ (trained on.*//')"

# shellcheck disable=SC2086
$ENGINE run --rm $RUN_FLAGS --user 12345:0 "$IMAGE" demo >"$WORK/demo-uid.out" 2>"$WORK/demo-uid.err" \
    || { tail -3 "$WORK/demo-uid.err"; fail "demo as another uid"; }
say "demo as uid 12345 in group 0 (Kubernetes runAsUser, OpenShift): $(grep -o '^# received [0-9]* frames' "$WORK/demo-uid.out")"

# shellcheck disable=SC2086
$ENGINE run --rm $RUN_FLAGS -v wildpose-check-cache:/var/cache/wildpose --entrypoint sh "$IMAGE" \
    -c 'touch /var/cache/wildpose/probe' || fail "the cache volume is not writable by the image's user"
$ENGINE volume rm wildpose-check-cache >/dev/null
say "cache volume: -v NAME:/var/cache/wildpose is writable by the image's user (the detector's download is kept)"

MOUNT=() DETECT=(--detector none)
if [ -n "${DETECTOR:-}" ]; then
    MOUNT=(-v "$(realpath "$DETECTOR"):/models/yolox.onnx:ro")
    DETECT=(--detector /models/yolox.onnx)
fi
port=$(free_port) metrics_port=$(free_port)
# shellcheck disable=SC2086
$ENGINE run -d --name wildpose-check $RUN_FLAGS --shm-size 1g -p "127.0.0.1:$port:5555" \
    -p "127.0.0.1:$metrics_port:9100" "${MOUNT[@]}" "$IMAGE" \
    run --source "cam0=$CLIP" --loop "${DETECT[@]}" --publish tcp://0.0.0.0:5555 --metrics 0.0.0.0:9100 >/dev/null
timeout 120 "$SUBSCRIBER" subscribe --endpoint "tcp://127.0.0.1:$port" --json --count 150 >"$WORK/poses.jsonl" \
    || { $ENGINE logs wildpose-check 2>&1 | tail -5; fail "no poses on the published port"; }
received=$(python3 - "$WORK/poses.jsonl" <<'EOF'
import json, statistics, sys
poses = [m for m in map(json.loads, open(sys.argv[1])) if m["kind"] == "pose"]
latency = statistics.median(m["t_publish"] - m["t_capture"] for m in poses) * 1000
people = sum(len(m["people"]) for m in poses) / len(poses)
print(f"{len(poses)} poses, {people:.2f} people per frame, capture-to-publish median {latency:.0f} ms")
EOF
)
say "run + subscribe: $received, received on this host through -p 127.0.0.1:$port:5555;" \
    "$($ENGINE logs wildpose-check 2>&1 | grep -o 'person detector: [a-z]*' | head -1)"
# --metrics 0.0.0.0:9100 (deploy/k8s probes it): /livez, /readyz and the Prometheus text through -p
scraped=$(python3 - "$metrics_port" <<'EOF'
import sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
codes = [urllib.request.urlopen(base + path, timeout=5).status for path in ("/livez", "/readyz")]
text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
published = next(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith('wildpose_frames_published_total{stream="cam0"}'))
print(f"/livez {codes[0]}, /readyz {codes[1]}, /metrics: {published:.0f} frames published")
EOF
) || fail "the metrics endpoint did not answer on -p 127.0.0.1:$metrics_port:9100"
say "metrics: $scraped"

# The proxy and the browser viewer in containers of their own, as compose.yaml runs them (the host's network
# here, where compose has its own: the viewer serves on 127.0.0.1 only).
proxy_port=$(free_port) web_port=$(free_port)
# shellcheck disable=SC2086
$ENGINE run -d --name wildpose-check-proxy $RUN_FLAGS --network host "$IMAGE" \
    proxy --upstream "tcp://127.0.0.1:$port" --bind "tcp://127.0.0.1:$proxy_port" >/dev/null
# shellcheck disable=SC2086
$ENGINE run -d --name wildpose-check-web $RUN_FLAGS --network host "$IMAGE" \
    web --endpoint "tcp://127.0.0.1:$proxy_port" --port "$web_port" >/dev/null
timeout 60 "$SUBSCRIBER" subscribe --endpoint "tcp://127.0.0.1:$proxy_port" --count 30 >"$WORK/proxied.txt" \
    || { $ENGINE logs wildpose-check-proxy 2>&1 | tail -5; fail "no poses through the proxy container"; }
say "proxy: $(grep -c '^pose ' "$WORK/proxied.txt") poses through \`wildpose proxy\` in its own container"
viewer=$("${PYTHON:-.venv/bin/python}" - "$web_port" <<'EOF'
import asyncio, json, sys, time
import aiohttp

async def main(port):
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):  # the container is starting
            try:
                async with session.get(url + "/") as page:
                    html = await page.text()
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)
        kinds = {}
        async with session.ws_connect(url + "/ws", headers={"Origin": url}) as socket:
            deadline = time.monotonic() + 30
            while kinds.get("pose", 0) < 10 and time.monotonic() < deadline:
                message = await socket.receive_str(timeout=30)
                kind = json.loads(message).get("kind") or "other"
                kinds[kind] = kinds.get(kind, 0) + 1
    print(f"page {len(html)} bytes; over its WebSocket: "
          + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())))

asyncio.run(main(int(sys.argv[1])))
EOF
) || { $ENGINE logs wildpose-check-web 2>&1 | tail -5; fail "the viewer container"; }
say "web: $viewer"
$ENGINE rm -f wildpose-check-proxy >/dev/null
$ENGINE rm -f wildpose-check-web >/dev/null

start=$(date +%s.%N)
$ENGINE stop -t 10 wildpose-check >/dev/null
stopped=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
status=$($ENGINE inspect wildpose-check --format '{{.State.ExitCode}}')
final=$($ENGINE logs wildpose-check 2>&1 | grep -o 'final stats.*')
[ "$status" = 0 ] && [[ "$final" == *"stopped by signal SIGTERM"* ]] || fail "docker stop: exit $status, $final"
say "docker stop: exit status 0 after $stopped s; $final"
