// The Try-it page: a canvas to draw a digit (and a mask), the controls of each mode, and the
// frames of the reverse process as the worker (worker.mjs) posts them. Everything heavy runs in
// the worker; this module only draws, checks the reader's input and shows results.
//
// The widget's element (#try-it) carries the URLs it needs in data- attributes, and reports its
// state in data-state: loading, ready, running, error (tests read it, and data-last-* of a run).
import { PIXELS, SIZE } from "./diffusion_loop.mjs";

const SCALE = 10; // canvas pixels per model pixel
const PEN_WIDTH = 2.4 * SCALE; // about MNIST's stroke width
const MASK_RADIUS = 2; // model pixels around the pointer that the mask brush marks
const MAX_SEED = 4294967295;

const root = document.getElementById("try-it");
const $ = (name) => root.querySelector(`[data-role="${name}"]`);

const drawCanvas = $("draw");
const resultCanvas = $("result");
const viewCanvas = $("view");
const ink = document.createElement("canvas"); // the drawing alone, at canvas resolution
ink.width = ink.height = SIZE * SCALE;
const inkContext = ink.getContext("2d", { willReadFrequently: true });
let mask = new Uint8Array(PIXELS); // 1 = regenerate
let tool = "pen";
let mode = "sdedit";
let settings = null;
let frames = [];
let runId = 0;
let runSeed = null;
let worker = null;

function setState(state) {
  root.dataset.state = state;
  for (const button of root.querySelectorAll("[data-mode]")) button.disabled = state !== "ready";
}

function say(text, kind = "info") {
  const line = $("message");
  line.textContent = text;
  line.dataset.kind = kind;
}

// --- drawing ------------------------------------------------------------------------------------

function clearInk() {
  inkContext.fillStyle = "black";
  inkContext.fillRect(0, 0, ink.width, ink.height);
}

function repaint() {
  const context = drawCanvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(ink, 0, 0);
  context.fillStyle = "rgba(255, 64, 64, 0.45)";
  for (let k = 0; k < PIXELS; k++) {
    if (mask[k]) context.fillRect((k % SIZE) * SCALE, Math.floor(k / SIZE) * SCALE, SCALE, SCALE);
  }
}

/** The drawing as the model sees it: 28 x 28 values in [0, 1], each the mean of its 10 x 10 block. */
function drawingPixels() {
  const data = inkContext.getImageData(0, 0, ink.width, ink.height).data;
  const pixels = new Float32Array(PIXELS);
  for (let y = 0; y < ink.height; y++) {
    for (let x = 0; x < ink.width; x++) {
      pixels[Math.floor(y / SCALE) * SIZE + Math.floor(x / SCALE)] += data[(y * ink.width + x) * 4];
    }
  }
  for (let k = 0; k < PIXELS; k++) pixels[k] /= 255 * SCALE * SCALE;
  return pixels;
}

function pointerAt(event) {
  const box = drawCanvas.getBoundingClientRect();
  return [((event.clientX - box.left) / box.width) * ink.width, ((event.clientY - box.top) / box.height) * ink.height];
}

function markMask([x, y]) {
  const column = x / SCALE;
  const row = y / SCALE;
  for (let r = 0; r < SIZE; r++) {
    for (let c = 0; c < SIZE; c++) {
      if ((r + 0.5 - row) ** 2 + (c + 0.5 - column) ** 2 <= MASK_RADIUS ** 2) mask[r * SIZE + c] = 1;
    }
  }
}

let last = null;
function stroke(event) {
  const point = pointerAt(event);
  if (tool === "mask") {
    markMask(point);
  } else {
    inkContext.strokeStyle = tool === "eraser" ? "black" : "white";
    inkContext.lineWidth = PEN_WIDTH;
    inkContext.lineCap = inkContext.lineJoin = "round";
    inkContext.beginPath();
    inkContext.moveTo(...(last ?? point));
    inkContext.lineTo(...point);
    inkContext.stroke();
  }
  last = point;
  repaint();
}

drawCanvas.addEventListener("pointerdown", (event) => {
  drawCanvas.setPointerCapture(event.pointerId);
  last = null;
  stroke(event);
});
drawCanvas.addEventListener("pointermove", (event) => {
  if (event.buttons & 1) stroke(event);
});
drawCanvas.addEventListener("pointerup", () => {
  last = null;
});

function loadPicture(picture) {
  if (picture.kind === "mask") {
    mask = Uint8Array.from(picture.pixels, (v) => (v > 0.5 ? 1 : 0));
  } else {
    const small = document.createElement("canvas");
    small.width = small.height = SIZE;
    const context = small.getContext("2d");
    const image = context.createImageData(SIZE, SIZE);
    picture.pixels.forEach((value, k) => {
      const level = Math.round(Math.min(1, Math.max(0, value)) * 255);
      image.data.set([level, level, level, 255], k * 4);
    });
    context.putImageData(image, 0, 0);
    inkContext.imageSmoothingEnabled = false;
    inkContext.drawImage(small, 0, 0, ink.width, ink.height);
  }
  repaint();
}

// --- showing results ------------------------------------------------------------------------------

function paint(canvas, pixels, view = null) {
  const small = document.createElement("canvas");
  small.width = small.height = SIZE;
  const context = small.getContext("2d");
  const image = context.createImageData(SIZE, SIZE);
  for (let k = 0; k < PIXELS; k++) {
    const source = view === "rot180" ? PIXELS - 1 - k : k;
    const level = Math.round(Math.min(1, Math.max(0, pixels[source])) * 255);
    image.data.set([level, level, level, 255], k * 4);
  }
  context.putImageData(image, 0, 0);
  const target = canvas.getContext("2d");
  target.imageSmoothingEnabled = false;
  target.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function showFrame(index) {
  const frame = frames[index];
  if (!frame) return;
  paint(resultCanvas, frame.pixels);
  if (mode === "anagram") paint(viewCanvas, frame.pixels, "rot180");
  $("frame").value = String(index);
  $("frame-label").textContent = frame.t === null
    ? `final image (${frames.length - 1} steps)`
    : `step ${index + 1} of ${frames.length - 1}: x_t at t = ${frame.t}`;
}

// --- checking the reader's input --------------------------------------------------------------

function number(role) {
  const text = $(role).value.trim();
  return text === "" ? NaN : Number(text);
}

/** The run's request, or a message saying what is wrong with the input. */
function request() {
  const [low, high] = settings.guidance_range;
  const guidance = number("guidance");
  if (!Number.isFinite(guidance) || guidance < low || guidance > high) {
    return { problem: `Guidance must be a number from ${low} to ${high} (0: unconditional, 1: conditional, `
      + `${settings.guidance}: the course's); got "${$("guidance").value}".` };
  }
  const seed = number("seed");
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    return { problem: `The seed must be a whole number from 0 to ${MAX_SEED}; got "${$("seed").value}".` };
  }
  const digit = Number($("prompt").value);
  const message = { type: "run", mode, seed, guidance, digit };
  if (mode === "anagram") {
    message.digits = [Number($("anagram-first").value), Number($("anagram-second").value)];
    message.view = "rot180";
  }
  if (mode === "sdedit" || mode === "inpaint") {
    const image = drawingPixels();
    if (!image.some((value) => value > 0)) {
      return { problem: "The canvas is empty: draw a digit (or load one of the site's inputs) first; "
        + (mode === "sdedit" ? "SDEdit edits a picture." : "inpainting fills in part of a picture.") };
    }
    message.image = image;
  }
  if (mode === "sdedit") message.iStart = Number($("i-start").value);
  if (mode === "inpaint") {
    if (!mask.some((value) => value)) {
      return { problem: "The mask is empty: paint the part to regenerate with the mask brush (or load one of the "
        + "site's masks) first." };
    }
    message.mask = Float32Array.from(mask);
  }
  return { message };
}

// --- talking to the worker --------------------------------------------------------------------

function start(chosen) {
  mode = chosen;
  for (const button of root.querySelectorAll("[data-mode]")) button.classList.toggle("active", button.dataset.mode === mode);
  viewCanvas.hidden = mode !== "anagram";
  root.classList.toggle("anagram", mode === "anagram");
  delete root.dataset.lastProblem;
  const { problem, message } = request();
  if (problem) {
    say(problem, "error");
    root.dataset.lastProblem = mode;
    return;
  }
  runId += 1;
  message.id = runId;
  runSeed = message.seed;
  frames = [];
  $("frame").max = "0";
  setState("running");
  say(`Running ${mode} with seed ${message.seed}...`);
  worker.postMessage(message);
}

function onWorkerMessage({ data }) {
  if (data.type === "ready") {
    setState("ready");
    say(`Model loaded in ${Math.round(data.loadMs)} ms. Draw a digit, pick a mode.`);
  } else if (data.type === "frame" && data.id === runId) {
    frames.push({ t: data.t, pixels: data.pixels });
    $("frame").max = String(frames.length - 1);
    showFrame(frames.length - 1);
  } else if (data.type === "done" && data.id === runId) {
    frames.push({ t: null, pixels: data.pixels });
    $("frame").max = String(frames.length - 1);
    showFrame(frames.length - 1);
    Object.assign(root.dataset, { lastMode: mode, lastMs: data.ms.toFixed(1), lastSteps: String(data.steps),
                                  lastCalls: String(data.calls) });
    setState("ready");
    say(`${mode}: ${data.steps} steps, ${data.calls} network calls, ${Math.round(data.ms)} ms (seed ${runSeed}).`);
  } else if (data.type === "error") {
    setState(modelReady ? "ready" : "error");
    say(`The demo failed: ${data.message}`, "error");
  }
}

let modelReady = false;

async function init() {
  setState("loading");
  const base = new URL(root.dataset.assets, document.baseURI);
  const response = await fetch(new URL("try-it.json", base));
  if (!response.ok) throw new Error(`could not fetch the model's settings (HTTP ${response.status})`);
  settings = await response.json();

  const iStart = $("i-start");
  iStart.max = String(settings.timesteps.length - 1);
  iStart.value = String(settings.i_start);
  const showIStart = () => {
    $("i-start-label").textContent = `${iStart.value} (t = ${settings.timesteps[Number(iStart.value)]})`;
  };
  iStart.addEventListener("input", showIStart);
  showIStart();
  $("guidance").value = String(settings.guidance);
  $("guidance-slider").min = String(settings.guidance_range[0]);
  $("guidance-slider").max = String(settings.guidance_range[1]);
  $("guidance-slider").value = String(settings.guidance);
  $("guidance-slider").addEventListener("input", () => ($("guidance").value = $("guidance-slider").value));
  $("guidance").addEventListener("input", () => ($("guidance-slider").value = $("guidance").value));

  const inputs = $("inputs");
  for (const picture of settings.inputs) {
    const option = document.createElement("option");
    option.value = picture.id;
    option.textContent = `${picture.kind === "mask" ? "mask: " : ""}${picture.label}`;
    inputs.append(option);
  }
  inputs.addEventListener("change", () => {
    const picture = settings.inputs.find((p) => p.id === inputs.value);
    if (picture) loadPicture(picture);
    inputs.value = "";
  });

  for (const button of root.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => {
      tool = button.dataset.tool;
      for (const other of root.querySelectorAll("[data-tool]")) other.classList.toggle("active", other === button);
    });
  }
  $("clear-drawing").addEventListener("click", () => (clearInk(), repaint()));
  $("clear-mask").addEventListener("click", () => ((mask = new Uint8Array(PIXELS)), repaint()));
  $("new-seed").addEventListener("click", () => ($("seed").value = String(Math.floor(Math.random() * MAX_SEED))));
  $("frame").addEventListener("input", () => showFrame(Number($("frame").value)));
  for (const button of root.querySelectorAll("[data-mode]")) button.addEventListener("click", () => start(button.dataset.mode));

  worker = new Worker(new URL("worker.mjs", base), { type: "module" });
  worker.onmessage = (event) => {
    if (event.data.type === "ready") modelReady = true;
    onWorkerMessage(event);
  };
  worker.onerror = (event) => {
    setState("error");
    say(`The demo's worker failed to start: ${event.message || "see the browser console"}`, "error");
  };
  worker.postMessage({ type: "load", runtime: new URL("ort/", base).href, model: new URL("model.onnx", base).href,
                       settings: { ...settings, inputs: undefined } });
}

clearInk();
repaint();
init().catch((error) => {
  setState("error");
  say(`The demo could not start: ${error.message}`, "error");
});
