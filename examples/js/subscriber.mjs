// Receive WildPose poses in Node.js: one JSON line per pose message on stdout.
//
//   npm ci
//   node subscriber.mjs [ENDPOINT] [COUNT]      # default tcp://127.0.0.1:5555, until Ctrl-C
//
// Messages are ZeroMQ multipart [topic, msgpack map] (schema version 1, see the README). The publisher
// sends `meta` (joint names, skeleton edges, units) to each new subscriber at once.
import { Subscriber } from "zeromq";
import { decode } from "@msgpack/msgpack";

const endpoint = process.argv[2] ?? "tcp://127.0.0.1:5555";
const count = Number(process.argv[3] ?? 0); // 0: no limit
const SCHEMA_VERSION = 1;

const socket = new Subscriber({ receiveHighWaterMark: 10000, linger: 0 });
socket.connect(endpoint);
socket.subscribe("pose/");
socket.subscribe("meta");

let joints = [];
let poses = 0;
for await (const [topicBytes, payload] of socket) {
  const topic = topicBytes.toString();
  const message = decode(payload);
  if (message.v !== SCHEMA_VERSION) {
    console.error(`skipping ${topic}: schema version ${message.v}, this example reads ${SCHEMA_VERSION}`);
    continue;
  }
  if (topic === "meta") {
    joints = message.joints;
    console.error(`meta: ${joints.length} joints, streams ${Object.keys(message.streams).join(", ")}`);
    continue;
  }
  // joints3d: 16 x [x, y, z] mm, root-relative (pelvis = 0), camera axes x right, y down, z forward
  const people = message.people.map((p) => ({ id: p.id, joints2d: p.joints2d, joints3d: p.joints3d, conf: p.conf }));
  console.log(JSON.stringify({ stream: message.stream, seq: message.seq, t_capture: message.t_capture, people }));
  poses += 1;
  if (count && poses >= count) break;
}
socket.close();
