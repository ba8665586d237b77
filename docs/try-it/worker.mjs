// The Try-it page's Web Worker: loads onnxruntime-web (WASM, one thread) and the exported UNet,
// then runs diffusion_loop.mjs off the page's thread, posting every step's x_t as a frame.
//
// Messages in:  { type: "load", runtime, model, settings }   (URLs of the runtime's folder and
//                                                              the .onnx file; try-it.json's object)
//               { type: "run", id, mode, seed, guidance, digit, digits, view, iStart, image, mask }
// Messages out: { type: "ready", loadMs } | { type: "frame", id, i, t, pixels }
//               | { type: "done", id, pixels, ms, steps, calls } | { type: "error", id, message }
import { run, seededNoise } from "./diffusion_loop.mjs";

let session = null;
let settings = null;
let ort = null;

async function load({ runtime, model, settings: loopSettings }) {
  const started = performance.now();
  ort = await import(new URL("ort.wasm.min.mjs", runtime).href);
  ort.env.wasm.numThreads = 1; // no SharedArrayBuffer needed: the site is served without COOP/COEP
  ort.env.wasm.wasmPaths = runtime;
  settings = loopSettings;
  session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
  return performance.now() - started;
}

function makeModel(counter) {
  const [xName, tName, cName] = settings.input_names;
  return {
    numTimesteps: settings.num_timesteps,
    numClasses: settings.num_classes,
    async predict(x, t01, c, n) {
      counter.calls += 1;
      const feeds = {
        [xName]: new ort.Tensor("float32", x, [n, 1, 28, 28]),
        [tName]: new ort.Tensor("float32", new Float32Array(n).fill(t01), [n]),
        [cName]: new ort.Tensor("float32", c, [n, settings.num_classes]),
      };
      const output = await session.run(feeds);
      return output[settings.output_name].data;
    },
  };
}

async function runMode(message) {
  const counter = { calls: 0 };
  const started = performance.now();
  let steps = 0;
  const pixels = await run(message.mode, {
    model: makeModel(counter),
    schedule: { alphasCumprod: settings.alphas_cumprod, timesteps: settings.timesteps },
    noise: seededNoise(message.seed),
    guidance: message.guidance,
    digit: message.digit,
    digits: message.digits,
    view: message.view,
    iStart: message.iStart,
    image: message.image && Float32Array.from(message.image),
    mask: message.mask && Float32Array.from(message.mask),
    onStep: (i, t, x) => {
      steps += 1;
      postMessage({ type: "frame", id: message.id, i, t, pixels: Float32Array.from(x) });
    },
  });
  return { pixels, ms: performance.now() - started, steps, calls: counter.calls };
}

onmessage = async ({ data }) => {
  try {
    if (data.type === "load") {
      const loadMs = await load(data);
      postMessage({ type: "ready", loadMs });
    } else if (data.type === "run") {
      if (!session) throw new Error("the model is not loaded yet");
      postMessage({ type: "done", id: data.id, ...(await runMode(data)) });
    }
  } catch (error) {
    postMessage({ type: "error", id: data.id, message: String(error && error.message ? error.message : error) });
  }
};
