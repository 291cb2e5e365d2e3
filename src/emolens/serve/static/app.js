// emolens web app: no build step, no dependencies. Talks only to this server's /v1 API.
"use strict";

const state = { colors: {}, names: {}, labels: [] };
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- API

// A server started with an API key answers 401: ask for the key once, keep it for this tab, and retry.
const KEY = "emolens-api-key";
let pendingKey = null;

function askForKey(problem) {
  if (!pendingKey) {
    pendingKey = new Promise((resolve) => {
      const form = $("key-form");
      $("key-problem").textContent = problem;
      form.hidden = false;
      $("api-key").focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        form.hidden = true;
        pendingKey = null;
        resolve($("api-key").value.trim());
      };
    });
  }
  return pendingKey;
}

async function apiFetch(url, options = {}) {
  for (;;) {
    const key = sessionStorage.getItem(KEY);
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const response = await fetch(url, { ...options, headers });
    if (response.status !== 401) return response;
    sessionStorage.setItem(KEY, await askForKey(key ? "(that key was refused)" : ""));
  }
}

function query(fallback) {
  const params = new URLSearchParams();
  if ($("model").value) params.set("model", $("model").value);
  if ($("detector").value) params.set("detector", $("detector").value);
  if (!fallback) params.set("fallback", "false");
  return params.toString();
}

// `fallback`: classify the whole image when no face is found. Right for a photo of one face, wrong for a live
// view or a video, where "no face" is the answer.
async function analyze(blob, filename, { fallback = true } = {}) {
  const form = new FormData();
  form.append("file", blob, filename || "image.jpg");
  let response;
  try {
    response = await apiFetch(`/v1/analyze?${query(fallback)}`, { method: "POST", body: form });
  } catch (err) {
    throw new Error("The server cannot be reached. Is `emolens serve` still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON: handled below */ }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `the server answered ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    error.retryAfter = parseFloat(response.headers.get("Retry-After")) || 1;
    throw error;
  }
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message ? `Could not analyse this: ${message}` : "";
  box.hidden = !message;
}

// ---------------------------------------------------------------- drawing

function colorOf(label) { return state.colors[label] || "#4b5bdc"; }
function nameOf(label) { return state.names[label] || label; }

// Sizes in screen pixels: a canvas shown smaller than its resolution (a phone) gets thicker lines and larger text.
function screenScale(canvas) {
  const shown = canvas.getBoundingClientRect().width;
  return shown > 0 ? canvas.width / shown : 1;
}

// Boxes first, then one label per face where it collides with no other label: above the box, below it,
// inside its top or bottom edge; a long label that fits nowhere shrinks to the face's number (the cards
// beside the image, and the list under it on a phone, carry the full label).
function drawFaces(ctx, faces, scale, pixel) {
  const lineWidth = 2 * pixel;
  ctx.lineWidth = lineWidth;
  ctx.font = `600 ${Math.round(13 * pixel)}px system-ui, sans-serif`;
  const pad = Math.round(4 * pixel);
  const th = parseInt(ctx.font.match(/(\d+)px/)[1], 10) + 2 * pad;
  const boxes = faces.map((face) => {
    const { x, y, width, height } = face.box;
    ctx.strokeStyle = colorOf(face.label);
    ctx.setLineDash(face.fallback ? [8 * pixel, 6 * pixel] : []);  // dashed: no face found, the whole image
    ctx.strokeRect(x * scale, y * scale, width * scale, height * scale);
    ctx.setLineDash([]);
    return { x: x * scale, y: y * scale, w: width * scale, h: height * scale };
  });
  const placed = [];
  faces.forEach((face, i) => {
    const whole = face.fallback ? " (whole image)" : "";
    const full = `${i + 1} ${nameOf(face.label)} ${Math.round(face.confidence * 100)}%${whole}`;
    const number = String(i + 1);
    const spot = labelSpot(ctx, full, boxes[i], th, pad, placed) || labelSpot(ctx, number, boxes[i], th, pad, placed)
      || labelSpot(ctx, number, boxes[i], th, pad, null);  // nowhere free: the number on the box anyway
    placed.push(spot);
    ctx.fillStyle = colorOf(face.label);
    ctx.fillRect(spot.x, spot.y, spot.w, spot.h);
    ctx.fillStyle = "#fff";
    ctx.fillText(spot.text, spot.x + pad, spot.y + th - pad - 2);
  });
  ctx.canvas.dataset.labels = JSON.stringify(placed.map(({ x, y, w, h, text }) => ({ x, y, w, h, text })));
}

function labelSpot(ctx, text, box, th, pad, placed) {
  const w = ctx.measureText(text).width + 2 * pad;
  const x = Math.max(0, Math.min(box.x, ctx.canvas.width - w));  // stays on the image
  const candidates = [box.y - th, box.y + box.h, box.y, box.y + box.h - th];
  if (placed === null) return { x, y: Math.max(0, Math.min(box.y, ctx.canvas.height - th)), w, h: th, text };
  for (const y of candidates) {
    if (y < 0 || y + th > ctx.canvas.height) continue;
    const spot = { x, y, w, h: th, text };
    if (!placed.some((p) => p.x < spot.x + spot.w && spot.x < p.x + p.w && p.y < spot.y + spot.h && spot.y < p.y + p.h)) {
      return spot;
    }
  }
  return null;
}

function faceCard(face, index) {
  const li = document.createElement("li");
  li.className = "face-card";
  li.dataset.label = face.label;
  const header = document.createElement("header");
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.style.background = colorOf(face.label);
  badge.textContent = String(index + 1);
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = nameOf(face.label) + (face.fallback ? " (whole image)" : "");
  const conf = document.createElement("span");
  conf.className = "conf";
  conf.textContent = `${Math.round(face.confidence * 100)}%`;
  header.append(badge, label, conf);
  li.append(header);
  Object.entries(face.probabilities)
    .sort((a, b) => b[1] - a[1])
    .forEach(([name, p]) => {
      const row = document.createElement("div");
      row.className = "bar";
      const n = document.createElement("span");
      n.className = "name";
      n.textContent = nameOf(name);
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = `${(p * 100).toFixed(1)}%`;
      fill.style.background = colorOf(name);
      track.append(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = `${(p * 100).toFixed(1)}%`;
      row.append(n, track, pct);
      li.append(row);
    });
  if (face.valence !== null && face.arousal !== null) {
    const va = document.createElement("div");
    va.className = "va";
    va.textContent = `valence ${face.valence.toFixed(2)} · arousal ${face.arousal.toFixed(2)}`;
    li.append(va);
  }
  return li;
}

// ---------------------------------------------------------------- image panel

async function analyzeImageFile(file) {
  showError("");
  $("image-summary").textContent = "Analysing…";
  $("image-result").hidden = false;
  $("faces").replaceChildren();
  let result;
  try {
    result = await analyze(file, file.name);
  } catch (err) {
    $("image-result").hidden = true;
    showError(err.message);
    return;
  }
  const bitmap = await createImageBitmap(file).catch(() => null);
  const canvas = $("image-canvas");
  const ctx = canvas.getContext("2d");
  const scale = bitmap ? Math.min(1, 1400 / Math.max(bitmap.width, bitmap.height)) : 1;
  canvas.width = Math.round(result.image.width * scale);
  canvas.height = Math.round(result.image.height * scale);
  if (bitmap) ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  drawFaces(ctx, result.faces, scale, screenScale(canvas));
  const count = result.faces.length;
  $("image-summary").textContent =
    `${count} face${count === 1 ? "" : "s"} · ${result.image.width}×${result.image.height} · ` +
    `${result.model} + ${result.detector} · ${Math.round(result.timings_ms.total)} ms`;
  $("image-result").dataset.faceCount = String(count);
  $("faces").replaceChildren(...result.faces.map(faceCard));
}

function setUpImagePanel() {
  const drop = $("drop");
  $("image-input").addEventListener("change", (e) => {
    if (e.target.files.length) analyzeImageFile(e.target.files[0]);
  });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer.files.length) analyzeImageFile(e.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------- timeline

function drawTimeline(canvas, points, span) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 160;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const left = 34, right = 8, top = 8, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  ctx.strokeStyle = "#e2e5ee";
  ctx.fillStyle = "#677089";
  ctx.font = "11px system-ui, sans-serif";
  [0, 0.5, 1].forEach((v) => {
    const y = top + plotH * (1 - v);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + plotW, y); ctx.stroke();
    ctx.fillText(`${v * 100}%`, 2, y + 4);
  });
  if (!points.length) return;
  const t1 = points[points.length - 1].t;
  const t0 = span ? Math.max(0, t1 - span) : points[0].t;
  const dt = Math.max(1e-6, t1 - t0);
  const labels = Object.keys(points[points.length - 1].p);
  labels.forEach((label) => {
    ctx.strokeStyle = colorOf(label);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let started = false;
    points.forEach((pt) => {
      if (pt.t < t0 || !(label in pt.p)) return;
      const x = left + plotW * ((pt.t - t0) / dt);
      const y = top + plotH * (1 - pt.p[label]);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    });
    ctx.stroke();
  });
  ctx.fillStyle = "#677089";
  ctx.fillText(`${t0.toFixed(1)} s`, left, top + plotH + 14);
  const end = `${t1.toFixed(1)} s`;
  ctx.fillText(end, left + plotW - ctx.measureText(end).width, top + plotH + 14);
  let lx = left;
  labels.forEach((label) => {
    ctx.fillStyle = colorOf(label);
    ctx.fillRect(lx, height - 14, 10, 10);
    ctx.fillStyle = "#1d2330";
    const text = nameOf(label);
    ctx.fillText(text, lx + 13, height - 5);
    lx += ctx.measureText(text).width + 24;
  });
}

// ---------------------------------------------------------------- frames

function frameBlob(source, width, height, maxSide) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  canvas.getContext("2d").drawImage(source, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((blob) => resolve({ blob, scale }), "image/jpeg", 0.85));
}

function drawOverlay(canvas, video, faces, scale) {
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  drawFaces(ctx, faces, 1 / scale, screenScale(canvas));
  canvas.dataset.faces = String(faces.length);
  canvas.dataset.boxes = JSON.stringify(faces.map((f) => f.box));  // what is drawn, for tests and tools
}

// ---------------------------------------------------------------- webcam panel

const webcam = { stream: null, timer: null, busy: false, points: [], start: 0 };

async function startWebcam() {
  showError("");
  const video = $("webcam-video");
  try {
    webcam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    showError(`the camera is not available (${err.name}); allow camera access for this page`);
    return;
  }
  video.srcObject = webcam.stream;
  video.classList.add("on");
  await video.play();
  webcam.points = [];
  webcam.start = performance.now();
  $("webcam-start").hidden = true;
  $("webcam-stop").hidden = false;
  $("webcam-status").textContent = "Live: about 4 frames a second are analysed";
  webcam.timer = setInterval(webcamTick, 250);
}

async function webcamTick() {
  const video = $("webcam-video");
  if (webcam.busy || !video.videoWidth) return;
  webcam.busy = true;
  try {
    const { blob, scale } = await frameBlob(video, video.videoWidth, video.videoHeight, 640);
    const result = await analyze(blob, "frame.jpg", { fallback: false });
    if (!webcam.stream) return;
    drawOverlay($("webcam-overlay"), video, result.faces, scale);
    $("webcam-status").textContent = result.faces.length
      ? "Live: about 4 frames a second are analysed"
      : "Live: no face in view";
    if (result.faces.length) {
      webcam.points.push({ t: (performance.now() - webcam.start) / 1000, p: result.faces[0].probabilities });
      if (webcam.points.length > 600) webcam.points.shift();
    }
    drawTimeline($("webcam-timeline"), webcam.points, 60);
  } catch (err) {
    if (err.status !== 503) showError(err.message);  // 503: the server is busy; the next frame will try again
  } finally {
    webcam.busy = false;
  }
}

function stopWebcam() {
  clearInterval(webcam.timer);
  if (webcam.stream) webcam.stream.getTracks().forEach((t) => t.stop());
  webcam.stream = null;
  $("webcam-video").classList.remove("on");
  $("webcam-start").hidden = false;
  $("webcam-stop").hidden = true;
  $("webcam-status").textContent = "";
}

// ---------------------------------------------------------------- video panel

const clip = { samples: [], run: 0 };

function seek(video, t) {
  // "seeked" can come before the frame at t is ready to draw (a busy headless Chrome drew a frame without the
  // face): where the browser can say when a new frame is presented, wait for that too, for at most 250 ms.
  return new Promise((resolve) => {
    video.addEventListener("seeked", () => {
      if (!("requestVideoFrameCallback" in video)) {
        resolve();
        return;
      }
      let done = false;
      const finish = () => {
        if (!done) {
          done = true;
          resolve();
        }
      };
      video.requestVideoFrameCallback(finish);
      setTimeout(finish, 250);
    }, { once: true });
    video.currentTime = t;
  });
}

async function analyzeVideoFile(file) {
  showError("");
  $("video-status").dataset.done = "false";
  const run = ++clip.run;
  const video = $("video-player");
  video.src = URL.createObjectURL(file);
  try {
    await new Promise((resolve, reject) => {
      video.addEventListener("loadeddata", resolve, { once: true });
      video.addEventListener("error", () => reject(new Error(
        `this browser cannot decode ${file.name || "the video"} (${file.type || "unknown type"}). Browsers play ` +
        "H.264, VP8, VP9 or AV1 video in MP4 or WebM; MPEG-4 Part 2 (OpenCV's 'mp4v') is not among them. " +
        "Convert it (ffmpeg -i in.mp4 -c:v libx264 out.mp4) or analyse it with `emolens video FILE`, " +
        "which reads it directly")), { once: true });
    });
  } catch (err) {
    showError(err.message);
    return;
  }
  const step = Math.max(0.1, parseFloat($("video-step").value) || 0.5);
  const times = [];
  for (let t = 0; t < video.duration && times.length < 600; t += step) times.push(t);
  clip.samples = [];
  const progress = $("video-progress");
  progress.hidden = false;
  progress.max = times.length;
  for (const [i, t] of times.entries()) {
    if (run !== clip.run) return;  // another video was chosen
    await seek(video, t);
    const { blob, scale } = await frameBlob(video, video.videoWidth, video.videoHeight, 640);
    let result;
    try {
      result = await analyzeWhenFree(blob, `frame-${i}.jpg`, run);
    } catch (err) {
      showError(err.message);
      return;
    }
    if (!result) return;  // another video was chosen while waiting
    clip.samples.push({ t, faces: result.faces, scale });
    drawOverlay($("video-overlay"), video, result.faces, scale);
    progress.value = i + 1;
    $("video-status").textContent = `${i + 1} of ${times.length} frames analysed`;
    drawTimeline($("video-timeline"), videoPoints(), 0);
  }
  progress.hidden = true;
  const faces = clip.samples.reduce((n, s) => n + s.faces.length, 0);
  $("video-status").textContent = `Done: ${clip.samples.length} frames, ${faces} faces. Press play to see them.`;
  $("video-status").dataset.done = "true";
  await seek(video, 0);
}

// A busy server (503) says when to come back (Retry-After): wait and retry the frame, a few times at most.
async function analyzeWhenFree(blob, filename, run) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await analyze(blob, filename, { fallback: false });
    } catch (err) {
      if (err.status !== 503 || attempt >= 20) throw err;
      const seconds = Math.min(err.retryAfter, 10);
      $("video-status").textContent = `The server is busy: retrying in ${seconds} s`;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      if (run !== clip.run) return null;
    }
  }
}

function videoPoints() {
  return clip.samples.filter((s) => s.faces.length).map((s) => ({ t: s.t, p: s.faces[0].probabilities }));
}

// Between two samples each face of the nearer one moves toward the matching face of the other, in proportion
// to the time, so boxes follow a panning video instead of jumping at every sample.
function facesAt(time) {
  const samples = clip.samples;
  const next = samples.findIndex((s) => s.t > time);
  if (next <= 0) return next === 0 ? samples[0] : samples[samples.length - 1];
  const [a, b] = [samples[next - 1], samples[next]];
  const w = (time - a.t) / (b.t - a.t);
  const [base, other, share] = w < 0.5 ? [a, b, w] : [b, a, 1 - w];
  const faces = base.faces.map((face) => {
    const match = nearestFace(face.box, other.faces);
    return match ? { ...face, box: mixBoxes(face.box, match.box, share) } : face;
  });
  return { faces, scale: base.scale };
}

function nearestFace(box, faces) {
  const centre = (b) => [b.x + b.width / 2, b.y + b.height / 2];
  const [cx, cy] = centre(box);
  let best = null;
  let bestDistance = 1.5 * Math.max(box.width, box.height);  // farther away: another face, not this one moved
  for (const face of faces) {
    const [fx, fy] = centre(face.box);
    const distance = Math.hypot(fx - cx, fy - cy);
    if (distance < bestDistance) [best, bestDistance] = [face, distance];
  }
  return best;
}

function mixBoxes(a, b, share) {
  const mix = (key) => Math.round(a[key] + (b[key] - a[key]) * share);
  return { x: mix("x"), y: mix("y"), width: mix("width"), height: mix("height") };
}

function showFacesAtTime() {
  const video = $("video-player");
  if (!clip.samples.length) return;
  const { faces, scale } = facesAt(video.currentTime);
  drawOverlay($("video-overlay"), video, faces, scale);
}

// "timeupdate" fires a few times a second: redraw on every displayed frame while the video plays.
function followWhilePlaying() {
  const video = $("video-player");
  const step = () => {
    showFacesAtTime();
    if (!video.paused && !video.ended) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

// ---------------------------------------------------------------- set-up

function selectTab(name) {
  ["image", "webcam", "video"].forEach((tab) => {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  });
  if (name !== "webcam") stopWebcam();
}

async function loadModels() {
  let info;
  try {
    info = await (await apiFetch("/v1/models")).json();
  } catch (err) {
    showError("the server did not list its models; reload the page");
    return;
  }
  state.colors = info.label_colors;
  state.names = info.display_names;
  const model = $("model");
  // Only what this server has: a model or detector whose weights are missing here would fail with 503.
  info.models.filter((m) => m.available).forEach((m) =>
    model.add(new Option(m.name, m.name, false, m.name === info.default_model)));
  const detector = $("detector");
  ["auto", ...info.detectors.filter((d) => d.available).map((d) => d.name), "none"].forEach((name) =>
    detector.add(new Option(name, name, false, name === info.default_detector)));
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  ["image", "webcam", "video"].forEach((tab) => $(`tab-${tab}`).addEventListener("click", () => selectTab(tab)));
  setUpImagePanel();
  $("webcam-start").addEventListener("click", startWebcam);
  $("webcam-stop").addEventListener("click", stopWebcam);
  $("video-input").addEventListener("change", (e) => { if (e.target.files.length) analyzeVideoFile(e.target.files[0]); });
  $("video-player").addEventListener("seeked", showFacesAtTime);
  $("video-player").addEventListener("play", followWhilePlaying);
  loadModels();
});
