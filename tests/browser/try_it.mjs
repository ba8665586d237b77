// The Try-it page's checks (tests/test_try_it.py), printing one JSON report on stdout.
//
//   node tests/browser/try_it.mjs equality --work DIR [--engine chromium|node] [--chromium PATH]
//     DIR holds model.onnx and cases.json (written by the test). The cases run through
//     docs/try-it/diffusion_loop.mjs and onnxruntime-web from node_modules: in headless Chromium
//     (DIR served over http with copies of the loop and the runtime) or directly under node.
//   node tests/browser/try_it.mjs page --site SITE [--base-path /PATH/] [--chromium PATH]
//     Serves SITE under the base path (as GitHub Pages serves a project's site; default /), opens
//     its part-a/try-it/ page, waits for the model, tries the bad inputs (an empty canvas,
//     an empty mask, a guidance out of range), draws a stroke and a mask with the mouse, runs each
//     mode and reads what the page shows: its message, the result canvas, the frames, the time.
//
// Exit status: 0 it ran (the test judges the report), 2 the check itself failed.
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { launchChromium } from "./chromium.mjs";
import { serveFolder } from "./static_server.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const RUNTIME = path.join(REPO, "node_modules/onnxruntime-web/dist");
const RUNTIME_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
const LOOP = path.join(REPO, "docs/try-it/diffusion_loop.mjs");
const CASES = path.join(HERE, "try_it_cases.mjs");
const RUN_TIMEOUT_MS = 120_000;

// --- equality -------------------------------------------------------------------------------------

async function equality({ work, engine, chromium }) {
  const cases = JSON.parse(await readFile(path.join(work, "cases.json"), "utf8"));
  const modelBytes = new Uint8Array(await readFile(path.join(work, "model.onnx")));
  if (engine === "node") {
    const ort = await import(pathToFileURL(path.join(RUNTIME, "ort.wasm.min.mjs")).href);
    const loop = await import(pathToFileURL(LOOP).href);
    const { runCases } = await import(pathToFileURL(CASES).href);
    return { engine, results: await runCases(ort, loop, modelBytes, cases) };
  }
  await mkdir(path.join(work, "ort"), { recursive: true });
  for (const name of RUNTIME_FILES) await copyFile(path.join(RUNTIME, name), path.join(work, "ort", name));
  await copyFile(LOOP, path.join(work, "diffusion_loop.mjs"));
  await copyFile(CASES, path.join(work, "try_it_cases.mjs"));
  await writeFile(path.join(work, "index.html"), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>equality</title>');
  const { server, baseUrl } = await serveFolder(work);
  const browser = await launchChromium(chromium);
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(baseUrl + "index.html");
    const results = await page.evaluate(async () => {
      const ort = await import("./ort/ort.wasm.min.mjs");
      const loop = await import("./diffusion_loop.mjs");
      const { runCases } = await import("./try_it_cases.mjs");
      const cases = await (await fetch("./cases.json")).json();
      const model = new Uint8Array(await (await fetch("./model.onnx")).arrayBuffer());
      return runCases(ort, loop, model, cases);
    });
    return { engine, results, console_errors: errors };
  } finally {
    await browser.close();
    server.close();
  }
}

// --- the page ---------------------------------------------------------------------------------

async function waitForState(page, states, timeout = RUN_TIMEOUT_MS) {
  await page.waitForFunction(
    (wanted) => wanted.includes(document.getElementById("try-it").dataset.state),
    states,
    { timeout, polling: 50 },
  );
  return page.evaluate(() => ({ ...document.getElementById("try-it").dataset }));
}

const message = (page) => page.evaluate(() => document.querySelector('#try-it [data-role="message"]').textContent);

/** Pixels of a canvas of the widget: how many levels it shows, and its mean level (0..255). */
function canvasStats(page, role) {
  return page.evaluate((name) => {
    const canvas = document.querySelector(`#try-it [data-role="${name}"]`);
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const levels = new Set();
    let sum = 0;
    for (let k = 0; k < data.length; k += 4) {
      levels.add(data[k]);
      sum += data[k];
    }
    return { levels: levels.size, mean: sum / (data.length / 4) };
  }, role);
}

async function strokeOn(page, points) {
  const box = await page.locator('#try-it [data-role="draw"]').boundingBox();
  const at = ([x, y]) => [box.x + (x / 28) * box.width, box.y + (y / 28) * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const point of points.slice(1)) await page.mouse.move(...at(point), { steps: 8 });
  await page.mouse.up();
}

async function click(page, selector) {
  await page.locator(`#try-it ${selector}`).click();
}

/** Clicks a mode with what is on the page now; returns the message when the input is refused. */
async function tryMode(page, mode) {
  await click(page, `[data-mode="${mode}"]`);
  const problem = await page.evaluate(() => document.getElementById("try-it").dataset.lastProblem ?? null);
  if (problem === mode) return { refused: await message(page) };
  const data = await waitForState(page, ["ready", "error"]);
  if (data.state === "error" || data.lastMode !== mode) return { failed: await message(page) };
  const frames = await page.evaluate(() => Number(document.querySelector('#try-it [data-role="frame"]').max));
  return {
    ms: Number(data.lastMs), steps: Number(data.lastSteps), calls: Number(data.lastCalls), frames,
    result: await canvasStats(page, "result"), message: await message(page),
  };
}

async function pageCheck({ site, chromium, "base-path": basePath }) {
  const { server, baseUrl } = await serveFolder(site, { basePath });
  const browser = await launchChromium(chromium);
  const errors = [];
  const outside = [];
  try {
    const page = await browser.newPage();
    page.on("console", (entry) => entry.type() === "error" && errors.push(entry.text()));
    page.on("pageerror", (error) => errors.push(String(error)));
    page.on("requestfailed", (request) => errors.push(`request failed: ${request.url()}`));
    page.on("request", (request) => !request.url().startsWith(baseUrl) && !request.url().startsWith("data:")
      && outside.push(request.url()));
    const opened = performance.now();
    await page.goto(baseUrl + "part-a/try-it/");
    const loaded = await waitForState(page, ["ready", "error"]);
    const report = { load_ms: performance.now() - opened, state: loaded.state, message: await message(page) };
    if (loaded.state !== "ready") return { ...report, console_errors: errors, outside_requests: outside };

    const bad = {};
    bad.empty_canvas_sdedit = await tryMode(page, "sdedit");
    bad.empty_canvas_inpaint = await tryMode(page, "inpaint");
    // a 7: a bar across the top, then down to the bottom left
    await strokeOn(page, [[7, 7], [21, 7], [12, 23]]);
    report.drawing = await canvasStats(page, "draw");
    bad.empty_mask = await tryMode(page, "inpaint");
    await page.locator('#try-it [data-role="guidance"]').fill("50");
    bad.guidance_too_large = await tryMode(page, "sample");
    await page.locator('#try-it [data-role="guidance"]').fill("five");
    bad.guidance_not_a_number = await tryMode(page, "sample");
    await page.locator('#try-it [data-role="guidance"]').fill("5");
    report.bad_input = bad;

    const runs = {};
    runs.sample = await tryMode(page, "sample");
    runs.sdedit = await tryMode(page, "sdedit");
    await click(page, '[data-tool="mask"]');
    await strokeOn(page, [[4, 18], [24, 18], [24, 24], [4, 24]]);
    runs.inpaint = await tryMode(page, "inpaint");
    runs.anagram = await tryMode(page, "anagram");
    report.anagram_view = await canvasStats(page, "view");
    report.runs = runs;
    return { ...report, console_errors: errors, outside_requests: outside };
  } finally {
    await browser.close();
    server.close();
  }
}

// --- main -------------------------------------------------------------------------------------------

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    work: { type: "string" },
    site: { type: "string" },
    "base-path": { type: "string", default: "/" },
    engine: { type: "string", default: "chromium" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
try {
  const command = positionals[0];
  let report;
  if (command === "equality") report = await equality(values);
  else if (command === "page") report = await pageCheck(values);
  else throw new Error(`unknown command ${command}: use equality or page`);
  process.stdout.write(JSON.stringify(report) + "\n");
} catch (error) {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(2);
}
