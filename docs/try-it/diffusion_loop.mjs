// The reverse diffusion loop of Part A in JavaScript, for the Try-it page: the same formulas as
// the Python package, step for step and draw for draw.
//
//   strided step        schedule.step (fixed posterior variance, noise only when t > 0)
//   forward noising     schedule.forward / forward_process.add_noise
//   CFG                 sampling.guide, on one network batch [unconditional; conditional]
//   the loop            sampling.iterative_denoise and sampling.sample
//   SDEdit, inpainting  editing.sdedit, editing.inpaint (i_start = 0)
//   anagram             illusions.anagram_estimate with the rot180 or flip view
//
// Images are Float32Arrays of N x 28 x 28 values (N images, C = 1), in the model's data space
// [0, 1] plus noise. Scalars are rounded to float32 where the Python code holds them in float32
// tensors, so the two loops agree to float32 rounding; tests/test_try_it.py holds them to 1e-4.
// Random draws come from a `noise` source with randn(count) -> Float32Array: `seededNoise(seed)`
// on the page, `recordedNoise(arrays)` to replay draws made by torch. The network is a function
// predict(x, t01, c, n) -> Promise<Float32Array> (eps for the batch), so this module runs anywhere
// (a Web Worker with onnxruntime-web, node, a test) and knows nothing of ONNX.

export const SIZE = 28;
export const PIXELS = SIZE * SIZE;
// diffusers clamps the posterior variance before its log; schedule.MIN_POSTERIOR_VARIANCE.
const MIN_POSTERIOR_VARIANCE = Math.fround(1e-20);
const f32 = Math.fround;

// --- the schedule ---------------------------------------------------------------------------

/** abar_t as float32, with abar_{-1} = 1 (forward_process.abar_at). */
export function abarAt(alphasCumprod, t) {
  return t < 0 ? 1 : f32(alphasCumprod[t]);
}

/** The scalars of one strided step t -> tPrev (schedule.step_coefficients), float32. */
export function stepCoefficients(alphasCumprod, t, tPrev) {
  if (!(tPrev < t)) throw new Error(`a reverse step goes down in time, got t=${t} -> t'=${tPrev}`);
  const abarT = abarAt(alphasCumprod, t);
  const abarPrev = abarAt(alphasCumprod, tPrev);
  const alpha = f32(abarT / abarPrev);
  const beta = f32(1 - alpha);
  const oneMinusAbarT = f32(1 - abarT);
  const oneMinusAbarPrev = f32(1 - abarPrev);
  const posteriorVariance = f32(f32(oneMinusAbarPrev / oneMinusAbarT) * beta);
  return {
    abarT,
    x0Coeff: f32(f32(f32(Math.sqrt(abarPrev)) * beta) / oneMinusAbarT),
    xtCoeff: f32(f32(f32(Math.sqrt(alpha)) * oneMinusAbarPrev) / oneMinusAbarT),
    // fixed_small: sigma = sqrt of the clamped posterior variance (schedule.step_std).
    sigma: f32(Math.sqrt(Math.max(posteriorVariance, MIN_POSTERIOR_VARIANCE))),
  };
}

/** x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (forward_process.add_noise); t = -1 gives x0. */
export function addNoise(x0, eps, alphasCumprod, t) {
  if (t < 0) return Float32Array.from(x0);
  const abarT = abarAt(alphasCumprod, t);
  const a = f32(Math.sqrt(abarT));
  const b = f32(Math.sqrt(f32(1 - abarT)));
  const out = new Float32Array(x0.length);
  for (let k = 0; k < x0.length; k++) out[k] = f32(a * x0[k]) + f32(b * eps[k]);
  return out;
}

/** A draw from q(x_t | x0): fresh noise from `noise` unless t = -1 (schedule.forward). */
export function forward(x0, alphasCumprod, t, noise) {
  return t < 0 ? Float32Array.from(x0) : addNoise(x0, noise.randn(x0.length), alphasCumprod, t);
}

/** One strided step x_t -> x_t' with the fixed posterior variance (schedule.step, no clipping):
 * x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), x_t' = c0 x0_hat + ct x_t + sigma z. */
export function step(x, eps, alphasCumprod, t, tPrev, z) {
  const { abarT, x0Coeff, xtCoeff, sigma } = stepCoefficients(alphasCumprod, t, tPrev);
  const rootOneMinus = f32(Math.sqrt(f32(1 - abarT)));
  const rootAbar = f32(Math.sqrt(abarT));
  const out = new Float32Array(x.length);
  const addNoiseHere = z !== null && t > 0;
  for (let k = 0; k < x.length; k++) {
    const x0Hat = f32(f32(x[k] - f32(rootOneMinus * eps[k])) / rootAbar);
    let value = f32(f32(x0Coeff * x0Hat) + f32(xtCoeff * x[k]));
    if (addNoiseHere) value = f32(value + f32(sigma * z[k]));
    out[k] = value;
  }
  return out;
}

// --- conditions and guidance -----------------------------------------------------------------

/** One-hot rows (n, numClasses) for a digit 0-9; -1 gives zero rows, the unconditional estimate. */
export function oneHot(digit, n, numClasses) {
  const rows = new Float32Array(n * numClasses);
  if (digit >= 0) for (let i = 0; i < n; i++) rows[i * numClasses + digit] = 1;
  return rows;
}

function concat(a, b) {
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Classifier-free guidance's one formula, u + g (c - u) (sampling.guide). */
export function guide(conditional, unconditional, guidance) {
  const out = new Float32Array(conditional.length);
  for (let k = 0; k < out.length; k++) {
    out[k] = f32(unconditional[k] + f32(guidance * f32(conditional[k] - unconditional[k])));
  }
  return out;
}

/** The noise estimate estimate(x, t) -> eps of `digit` with CFG at `guidance`: one network call
 * on the batch [x; x] with conditions [unconditional; digit] (sampling.guided_estimate). */
export function guidedEstimate(model, digit, guidance) {
  return async (x, t) => {
    const n = x.length / PIXELS;
    const both = await model.predict(
      concat(x, x),
      f32((t + 1) / model.numTimesteps),
      concat(oneHot(-1, n, model.numClasses), oneHot(digit, n, model.numClasses)),
      2 * n,
    );
    const half = n * PIXELS;
    return guide(both.subarray(half), both.subarray(0, half), guidance);
  };
}

// --- views for anagrams (illusions.VIEWS) ------------------------------------------------------

function mapPixels(x, source) {
  const out = new Float32Array(x.length);
  for (let base = 0; base < x.length; base += PIXELS) {
    for (let r = 0; r < SIZE; r++) {
      for (let c = 0; c < SIZE; c++) out[base + r * SIZE + c] = x[base + source(r, c)];
    }
  }
  return out;
}

export const VIEWS = {
  // Upside down: along the height, not the width.
  flip: (x) => mapPixels(x, (r, c) => (SIZE - 1 - r) * SIZE + c),
  rot180: (x) => mapPixels(x, (r, c) => (SIZE - 1 - r) * SIZE + (SIZE - 1 - c)),
};

/** eps = (eps_1(x) + view^-1(eps_2(view(x)))) / 2; both views here are their own inverse. */
export function anagramEstimate(first, second, view) {
  const apply = VIEWS[view];
  if (!apply) throw new Error(`unknown view ${view}: use ${Object.keys(VIEWS).join(" or ")}`);
  return async (x, t) => {
    const one = await first(x, t);
    const two = apply(await second(apply(x), t));
    const out = new Float32Array(one.length);
    for (let k = 0; k < out.length; k++) out[k] = f32(f32(one[k] + two[k]) / 2);
    return out;
  };
}

// --- the loop ------------------------------------------------------------------------------------

/** Denoise x, which is at timesteps[iStart], through every later timestep and a last step to
 * t' = -1 (sampling.iterative_denoise): one draw per step with t > 0, then `project(x, t')`.
 * onStep(i, t, x) is called before each step, with x at timesteps[i]. */
export async function iterativeDenoise({ x, timesteps, iStart, estimate, alphasCumprod, noise, project, onStep }) {
  if (!(iStart >= 0 && iStart < timesteps.length)) {
    throw new Error(`i_start must index timesteps (0..${timesteps.length - 1}), got ${iStart}`);
  }
  for (let i = iStart; i < timesteps.length; i++) {
    const t = timesteps[i];
    const tPrev = i + 1 < timesteps.length ? timesteps[i + 1] : -1;
    if (onStep) await onStep(i, t, x);
    const eps = await estimate(x, t);
    const z = t > 0 ? noise.randn(x.length) : null;
    x = step(x, eps, alphasCumprod, t, tPrev, z);
    if (project) x = project(x, tPrev);
  }
  return x;
}

/** The four things the page does, each the Python function named beside it. `model` is
 * { predict, numTimesteps, numClasses }; `schedule` is { alphasCumprod, timesteps }. */
export async function run(mode, options) {
  const { model, schedule, noise, guidance, onStep } = options;
  const { alphasCumprod, timesteps } = schedule;
  const loop = (x, iStart, estimate, project) =>
    iterativeDenoise({ x, timesteps, iStart, estimate, alphasCumprod, noise, project, onStep });
  if (mode === "sample") {
    // sampling.sample: x_T first, then the loop from i = 0.
    return loop(noise.randn(PIXELS), 0, guidedEstimate(model, options.digit, guidance));
  }
  if (mode === "sdedit") {
    // editing.sdedit: the image noised to timesteps[i_start], then the loop from there.
    const { image, iStart } = options;
    if (!(iStart >= 0 && iStart < timesteps.length)) {
      throw new Error(`i_start must index timesteps (0..${timesteps.length - 1}), got ${iStart}`);
    }
    const xStart = forward(image, alphasCumprod, timesteps[iStart], noise);
    return loop(xStart, iStart, guidedEstimate(model, options.digit, guidance));
  }
  if (mode === "inpaint") {
    // editing.inpaint with i_start = 0: after every step, x' <- m x' + (1 - m) forward(image, t').
    const { image, mask } = options;
    const keepKnown = (x, tPrev) => {
      const known = forward(image, alphasCumprod, tPrev, noise);
      const out = new Float32Array(x.length);
      for (let k = 0; k < x.length; k++) out[k] = f32(f32(mask[k] * x[k]) + f32(f32(1 - mask[k]) * known[k]));
      return out;
    };
    return loop(noise.randn(image.length), 0, guidedEstimate(model, options.digit, guidance), keepKnown);
  }
  if (mode === "anagram") {
    // illusions.visual_anagram: reads as digits[0] as it is, as digits[1] through the view.
    const [first, second] = options.digits;
    const estimate = anagramEstimate(
      guidedEstimate(model, first, guidance), guidedEstimate(model, second, guidance), options.view ?? "rot180");
    return loop(noise.randn(PIXELS), 0, estimate);
  }
  throw new Error(`unknown mode ${mode}: use sample, sdedit, inpaint or anagram`);
}

// --- random draws ----------------------------------------------------------------------------

/** Standard normal draws from a seeded xoshiro128** generator (Box-Muller, float32): the page's
 * source. Seeds are whole numbers 0..2**32-1; the same seed gives the same run in any browser,
 * not torch's numbers (the equality test replays torch's draws instead). */
export function seededNoise(seed) {
  let s = (seed >>> 0) || 0;
  const splitmix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const state = [splitmix(), splitmix(), splitmix(), splitmix()];
  const rotl = (x, k) => ((x << k) | (x >>> (32 - k))) >>> 0;
  const next = () => {
    const result = Math.imul(rotl(Math.imul(state[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (state[1] << 9) >>> 0;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] = (state[2] ^ t) >>> 0;
    state[3] = rotl(state[3], 11);
    return result;
  };
  const uniform = () => (next() + 0.5) / 4294967296; // in (0, 1): the log below stays finite
  return {
    randn(count) {
      const out = new Float32Array(count);
      for (let k = 0; k < count; k += 2) {
        const radius = Math.sqrt(-2 * Math.log(uniform()));
        const angle = 2 * Math.PI * uniform();
        out[k] = radius * Math.cos(angle);
        if (k + 1 < count) out[k + 1] = radius * Math.sin(angle);
      }
      return out;
    },
  };
}

/** Replays `draws` (Float32Arrays, in order): torch's draws, exported by the equality test. A
 * draw of another size, or one more than there are, throws: the loops' draw order must agree. */
export function recordedNoise(draws) {
  let used = 0;
  return {
    randn(count) {
      if (used >= draws.length) throw new Error(`draw ${used + 1} asked for, only ${draws.length} recorded`);
      const draw = draws[used];
      if (draw.length !== count) throw new Error(`draw ${used + 1} has ${draw.length} values, ${count} asked for`);
      used += 1;
      return Float32Array.from(draw);
    },
    get used() {
      return used;
    },
  };
}
