// Runs the equality test's cases through docs/try-it/diffusion_loop.mjs with onnxruntime-web (WASM,
// one thread): the same code path as the Try-it page's worker, in node or in a browser page.
//
// `cases` is what tests/test_try_it.py writes: the loop's settings, then per case the mode, its
// options (digit, digits, view, guidance, iStart, image, mask) and torch's draws, in order.
// Returns per case the loop's output, how many draws it used of how many, and its time.

export async function runCases(ort, loop, modelBytes, cases) {
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ["wasm"] });
  const settings = cases.settings;
  const [xName, tName, cName] = settings.input_names;
  const model = {
    numTimesteps: settings.num_timesteps,
    numClasses: settings.num_classes,
    async predict(x, t01, c, n) {
      const output = await session.run({
        [xName]: new ort.Tensor("float32", x, [n, 1, 28, 28]),
        [tName]: new ort.Tensor("float32", new Float32Array(n).fill(t01), [n]),
        [cName]: new ort.Tensor("float32", c, [n, settings.num_classes]),
      });
      return output[settings.output_name].data;
    },
  };
  const schedule = { alphasCumprod: settings.alphas_cumprod, timesteps: settings.timesteps };
  const results = {};
  for (const item of cases.cases) {
    const noise = loop.recordedNoise(item.draws.map((draw) => Float32Array.from(draw)));
    const started = performance.now();
    const output = await loop.run(item.mode, {
      model,
      schedule,
      noise,
      guidance: item.guidance,
      digit: item.digit,
      digits: item.digits,
      view: item.view,
      iStart: item.i_start,
      image: item.image && Float32Array.from(item.image),
      mask: item.mask && Float32Array.from(item.mask),
    });
    results[item.name] = { output: Array.from(output), used: noise.used, drawn: item.draws.length,
                           ms: performance.now() - started };
  }
  return results;
}
