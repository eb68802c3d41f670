// WildPose live viewer: draws what `wildpose web` forwards from the pipeline's ZeroMQ topics.
// Per stream: the latest thumbnail with the 2D skeleton as SVG (one circle.joint per joint, so the
// page's state can be read from the DOM) and the 3D skeleton with three.js (drag to rotate).
import * as THREE from "./three.module.js";

const STALE_AFTER_S = 2.0; // no message for this long: "no stream arriving"
const RIGHT = "#ff8c00", LEFT = "#0096ff", CENTRE = "#e600e6"; // as stream/overlay.py
const ID_PALETTE = ["#ffff00", "#00ffff", "#ffffff", "#b4ff78", "#ffb4dc", "#a0c8ff"]; // as overlay.py
const PERSON_SPACING_MM = 1500;

let jointNames = [];
let edges = [];
let endpoints = [];
let framesInfo; // undefined: no meta yet; null: thumbnails off; {hz, width}
const views = new Map();
const statusEl = document.getElementById("status");

function boneColour(a, b) {
  const names = [jointNames[a] || "", jointNames[b] || ""];
  if (names.some((n) => n.startsWith("r_"))) return RIGHT;
  if (names.some((n) => n.startsWith("l_"))) return LEFT;
  return CENTRE;
}

function confidenceRgb(conf) {
  const c = Math.min(Math.max(conf, 0), 1);
  return c < 0.5 ? [255, Math.round(510 * c), 0] : [Math.round(510 * (1 - c)), 255, 0];
}

function svgEl(name, attributes) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, value);
  return el;
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

class StreamView {
  constructor(id) {
    this.id = id;
    this.updates = 0;
    this.frames = 0;
    this.lastPoseAt = performance.now();
    this.root = document.createElement("section");
    this.root.className = "stream";
    this.root.dataset.stream = id;
    this.root.dataset.people = "0";
    this.root.innerHTML = `
      <h2></h2>
      <div class="stats">waiting for stats...</div>
      <div class="views">
        <div class="view2d"><img class="thumb" alt=""><svg class="skeleton2d"></svg><div class="note"></div></div>
        <div class="view3d"><canvas class="skeleton3d" width="360" height="360"></canvas></div>
      </div>
      <div class="counters">poses <span class="updates">0</span> | thumbnails <span class="frames">0</span> |
        seq <span class="seq">-</span> | people <span class="people">0</span> | latency <span class="latency">-</span></div>`;
    this.root.querySelector("h2").textContent = id;
    document.getElementById("streams").appendChild(this.root);
    this.img = this.root.querySelector("img");
    this.svg = this.root.querySelector("svg");
    this.box = this.root.querySelector(".view2d");
    this.note = this.root.querySelector(".note");
    this.setSize([640, 360]);
    this.setUp3d(this.root.querySelector("canvas"));
    this.updateNote();
  }

  setSize(size) {
    if (this.size && this.size[0] === size[0] && this.size[1] === size[1]) return;
    this.size = size;
    this.svg.setAttribute("viewBox", `0 0 ${size[0]} ${size[1]}`);
    this.box.style.aspectRatio = `${size[0]} / ${size[1]}`;
  }

  updateNote() {
    this.note.textContent = framesInfo === null
      ? "no thumbnails: start the pipeline with --publish-frames" : "";
  }

  setUp3d(canvas) {
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(window.devicePixelRatio || 1);
    this.renderer.setSize(360, 360, false);
    this.renderer.setClearColor(0x1c1e24);
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(40, 1, 10, 50000);
    this.camera.position.set(0, 0, 4200);
    this.world = new THREE.Group(); // rotated by the mouse
    this.world.rotation.set(0.25, -0.6, 0);
    this.scene.add(this.world);
    const grid = new THREE.GridHelper(3000, 6, 0x555555, 0x333333);
    grid.position.y = -1000; // about where the feet are, 1 m below the pelvis
    this.world.add(grid);
    this.world.add(new THREE.AxesHelper(300));
    this.people = [];
    let dragging = null;
    canvas.addEventListener("pointerdown", (e) => { dragging = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointerup", () => { dragging = null; });
    canvas.addEventListener("pointermove", (e) => {
      if (!dragging) return;
      this.world.rotation.y += (e.clientX - dragging[0]) * 0.01;
      this.world.rotation.x = Math.max(-1.5, Math.min(1.5, this.world.rotation.x + (e.clientY - dragging[1]) * 0.01));
      dragging = [e.clientX, e.clientY];
      this.render3d();
    });
    this.render3d();
  }

  person3d(index) {
    while (this.people.length <= index) {
      const lines = new THREE.BufferGeometry();
      lines.setAttribute("position", new THREE.BufferAttribute(new Float32Array(edges.length * 6), 3));
      lines.setAttribute("color", new THREE.BufferAttribute(new Float32Array(edges.length * 6), 3));
      const points = new THREE.BufferGeometry();
      points.setAttribute("position", new THREE.BufferAttribute(new Float32Array(jointNames.length * 3), 3));
      points.setAttribute("color", new THREE.BufferAttribute(new Float32Array(jointNames.length * 3), 3));
      const group = new THREE.Group();
      group.add(new THREE.LineSegments(lines, new THREE.LineBasicMaterial({ vertexColors: true })));
      group.add(new THREE.Points(points, new THREE.PointsMaterial({ size: 9, sizeAttenuation: false, vertexColors: true })));
      this.world.add(group);
      this.people.push(group);
    }
    return this.people[index];
  }

  pose(message) {
    this.updates += 1;
    this.lastPoseAt = performance.now();
    this.root.classList.remove("stale");
    this.setSize(message.size);
    this.draw2d(message.people, message.size);
    this.draw3d(message.people);
    this.root.dataset.people = String(message.people.length);
    this.root.querySelector(".updates").textContent = String(this.updates);
    this.root.querySelector(".seq").textContent = String(message.seq);
    this.root.querySelector(".people").textContent = String(message.people.length);
    const latency = (message.t_publish - message.t_capture) * 1000;
    this.root.querySelector(".latency").textContent = `${latency.toFixed(1)} ms`;
  }

  draw2d(people, size) {
    const width = Math.max(2, Math.min(size[0], size[1]) / 180);
    this.svg.replaceChildren();
    for (const person of people) {
      const [x0, y0, x1, y1] = person.bbox;
      this.svg.appendChild(svgEl("rect", { class: "bbox", x: x0, y: y0, width: x1 - x0, height: y1 - y0,
        fill: "none", stroke: ID_PALETTE[person.id % ID_PALETTE.length], "stroke-width": width / 2 }));
      edges.forEach(([a, b]) => {
        const [xa, ya] = person.joints2d[a], [xb, yb] = person.joints2d[b];
        this.svg.appendChild(svgEl("line", { class: "bone", x1: xa, y1: ya, x2: xb, y2: yb,
          stroke: boneColour(a, b), "stroke-width": width, "stroke-linecap": "round" }));
      });
      person.joints2d.forEach(([x, y], j) => {
        const [r, g, b] = confidenceRgb(person.conf[j]);
        const circle = svgEl("circle", { class: "joint", cx: x, cy: y, r: width + 2, fill: `rgb(${r},${g},${b})` });
        circle.dataset.joint = jointNames[j] || String(j);
        this.svg.appendChild(circle);
      });
      const label = svgEl("text", { class: "person-id", x: x0, y: Math.max(y0 - 4, 12),
        fill: ID_PALETTE[person.id % ID_PALETTE.length],
        "font-size": Math.max(12, size[1] / 30) });
      label.textContent = `id ${person.id}`;
      this.svg.appendChild(label);
    }
  }

  draw3d(people) {
    people.forEach((person, i) => {
      const group = this.person3d(i);
      group.visible = true;
      group.position.x = (i - (people.length - 1) / 2) * PERSON_SPACING_MM;
      const [lines, points] = group.children;
      const linePos = lines.geometry.attributes.position, lineCol = lines.geometry.attributes.color;
      const color = new THREE.Color();
      // camera axes (x right, y down, z forward) -> three.js (x right, y up, z toward the viewer)
      const at = (j) => [person.joints3d[j][0], -person.joints3d[j][1], -person.joints3d[j][2]];
      edges.forEach(([a, b], e) => {
        color.set(boneColour(a, b));
        linePos.setXYZ(2 * e, ...at(a));
        linePos.setXYZ(2 * e + 1, ...at(b));
        lineCol.setXYZ(2 * e, color.r, color.g, color.b);
        lineCol.setXYZ(2 * e + 1, color.r, color.g, color.b);
      });
      const pointPos = points.geometry.attributes.position, pointCol = points.geometry.attributes.color;
      person.joints3d.forEach((_, j) => {
        const [r, g, b] = confidenceRgb(person.conf[j]);
        pointPos.setXYZ(j, ...at(j));
        pointCol.setXYZ(j, r / 255, g / 255, b / 255);
      });
      for (const attribute of [linePos, lineCol, pointPos, pointCol]) attribute.needsUpdate = true;
      lines.geometry.computeBoundingSphere();
      points.geometry.computeBoundingSphere();
    });
    for (let i = people.length; i < this.people.length; i++) this.people[i].visible = false;
    this.render3d();
  }

  render3d() {
    this.renderer.render(this.scene, this.camera);
  }

  frame(message) {
    this.frames += 1;
    this.img.src = `data:image/jpeg;base64,${message.jpeg}`;
    this.root.querySelector(".frames").textContent = String(this.frames);
  }

  stats(message) {
    const fps = Object.entries(message.fps).map(([stage, value]) => `${stage} ${value.toFixed(1)}`).join("  ");
    const total = message.latency_ms.total;
    const drops = Object.values(message.drops).reduce((sum, value) => sum + value, 0);
    this.root.querySelector(".stats").textContent =
      `fps: ${fps}\nlatency p50 ${total ? total.p50.toFixed(1) : "-"} ms, p95 ${total ? total.p95.toFixed(1) : "-"} ms` +
      ` | drops ${drops}`;
    this.root.querySelector(".stats").style.whiteSpace = "pre";
  }
}

function viewFor(stream) {
  if (!views.has(stream)) views.set(stream, new StreamView(stream));
  return views.get(stream);
}

function onStatus(message) {
  const since = message.since_last_s;
  const where = message.endpoints.join(" ");
  if (since === null || since > STALE_AFTER_S) {
    setStatus("waiting", `No stream arriving from ${where}` +
      (since === null ? "" : ` (nothing for ${since.toFixed(0)} s)`) +
      ": start `wildpose run --publish-frames ...` or `wildpose replay ...` there");
  } else {
    setStatus("live", `Live: ${views.size} stream(s) from ${where}`);
  }
  const now = performance.now();
  for (const view of views.values()) {
    view.root.classList.toggle("stale", now - view.lastPoseAt > STALE_AFTER_S * 1000);
  }
}

function onMessage(message) {
  switch (message.kind) {
    case "hello":
      jointNames = message.joints;
      edges = message.edges;
      endpoints = message.endpoints;
      setStatus("waiting", `No stream arriving from ${endpoints.join(" ")} yet`);
      break;
    case "meta":
      jointNames = message.joints;
      edges = message.edges;
      framesInfo = message.frames === undefined ? null : message.frames;
      for (const view of views.values()) view.updateNote();
      break;
    case "pose":
      viewFor(message.stream).pose(message);
      if (statusEl.dataset.state !== "live") setStatus("live", `Live: ${views.size} stream(s) from ${endpoints.join(" ")}`);
      break;
    case "frame": viewFor(message.stream).frame(message); break;
    case "stats": viewFor(message.stream).stats(message); break;
    case "status": onStatus(message); break;
  }
}

function connect() {
  const socket = new WebSocket(`ws://${location.host}/ws`);
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = () => {
    setStatus("disconnected", "Lost the connection to `wildpose web`; retrying every second...");
    setTimeout(connect, 1000);
  };
}

connect();
