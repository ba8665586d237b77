// Opens every page of a built site in headless Chromium, served over http, and prints one JSON
// report on stdout: what was opened and every problem found, each with its page. Problems:
//   broken_image        an <img> that did not load (naturalWidth 0)
//   broken_link         an internal href whose page or file is missing, or whose #fragment names
//                       no element of that page
//   console_error       a console error or an uncaught exception
//   failed_request      a request that failed or was answered with status >= 400
//   external_request    a request that left the site (it must read offline)
//   figure_without_provenance      a <figure> not followed by its provenance block
//   provenance_without_reference   a provenance block whose "computed by" is not a link to the
//                       reference entry of the function (…reference/…#diffusion_lab.<dotted path>)
//   try_it_failed       a page with the Try-it widget (#try-it) whose model and runtime did not load,
//                       or whose sample run did not finish (the page's own state says which)
//   broken_404_page     a missing address inside the site not answered 404 with the site's 404 page,
//                       or that page's stylesheets, scripts or images not loading there
//
// --base-path /name/ serves the site under that path, as GitHub Pages serves a project's site
// (https://<owner>.github.io/<repository>/): anything outside it is answered 404, so a link or an
// asset that escapes it (an absolute "/..." address) is reported. Addresses in the report are the
// site's own ("/part-a/editing/"), without the base path.
//
// Usage: node tests/browser/check_site.mjs [--chromium /usr/bin/chromium] [--jobs 4] [--base-path /]
//                                          SITE_DIR
// Exit status: 0 no problem, 1 problems (listed in the report), 2 the check itself failed.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";

import { launchChromium } from "./chromium.mjs";
import { normalBasePath, serveFolder } from "./static_server.mjs";

const PAGE_TIMEOUT_MS = 30_000;
// After `load`, how long a page may keep fetching (the search index, lazy assets) before it is judged.
const SETTLE_TIMEOUT_MS = 5_000;
// How long the Try-it widget may take to load its model and runtime, and then to run one sample.
const TRY_IT_TIMEOUT_MS = 120_000;
// A missing address inside the site, some folders deep: the 404 page must still find its assets.
const MISSING_ADDRESS = "/no-such-section/no-such-page/";

/** Every HTML file under `root`, as site addresses: "/", "/part-a/editing/", "/404.html". */
async function siteAddresses(root) {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".html"))
    .map((entry) => {
      const relative = path.relative(root, path.join(entry.parentPath ?? entry.path, entry.name));
      const address = "/" + relative.split(path.sep).join("/");
      return address.endsWith("/index.html") ? address.slice(0, -"index.html".length) : address;
    })
    .sort();
}

/** The file an address is served from, so that "/a/" and "/a/index.html" are one page. */
function pageKey(pathname) {
  return pathname.endsWith("/") ? pathname + "index.html" : pathname;
}

/** A served URL's pathname as a site address ("/fun/a/" -> "/a/" under base "/fun/"); null outside. */
function siteAddress(pathname, base) {
  return pathname.startsWith(base) ? "/" + pathname.slice(base.length) : null;
}

// Runs inside the page: loads every image (lazy ones too), then reads what the checks need.
async function readPage() {
  const text = (element) => element.textContent.replace(/\s+/g, " ").trim();
  const images = [...document.images];
  for (const image of images) image.loading = "eager";
  await Promise.all(
    images.map((image) =>
      image.complete
        ? null
        : new Promise((resolve) => {
            image.addEventListener("load", resolve, { once: true });
            image.addEventListener("error", resolve, { once: true });
            setTimeout(resolve, 15000);
          }),
    ),
  );
  const figures = [...document.querySelectorAll("figure")].map((figure, index) => {
    const caption = figure.querySelector("figcaption");
    const next = figure.nextElementSibling;
    const provenance = next && next.matches("details.provenance") ? next : null;
    const computedBy = provenance
      ? [...provenance.querySelectorAll("tr")]
          .filter((row) => row.cells.length >= 2 && text(row.cells[0]) === "computed by")
          .map((row) => {
            const link = row.cells[1].querySelector("a[href]");
            return { name: text(link ?? row.cells[1]), href: link ? link.getAttribute("href") : null };
          })
      : [];
    return {
      number: index + 1,
      caption: caption ? text(caption).slice(0, 90) : "(no caption)",
      hasProvenance: provenance !== null,
      computedBy,
    };
  });
  return {
    ids: [
      ...[...document.querySelectorAll("[id]")].map((element) => element.id),
      ...[...document.querySelectorAll("a[name]")].map((anchor) => anchor.name),
    ],
    images: images.map((image) => ({
      src: image.getAttribute("src"),
      loaded: image.complete && image.naturalWidth > 0,
    })),
    links: [...document.querySelectorAll("a[href], area[href]")].map((anchor) => ({
      href: anchor.getAttribute("href"),
      url: anchor.href,
      text: text(anchor).slice(0, 60),
    })),
    figures,
    hasTryIt: document.getElementById("try-it") !== null,
  };
}

/** The Try-it widget, as a reader uses it: wait for its model and runtime to load, then run one
 * sample from noise (no drawing needed) and read what the page reports. */
async function exerciseTryIt(page) {
  const state = () => page.evaluate(() => ({ ...document.getElementById("try-it").dataset }));
  const message = () => page.evaluate(() => document.querySelector('#try-it [data-role="message"]')?.textContent ?? "");
  const waitFor = (states) => page.waitForFunction(
    (wanted) => wanted.includes(document.getElementById("try-it").dataset.state), states,
    { timeout: TRY_IT_TIMEOUT_MS, polling: 100 });
  const result = { cross_origin_isolated: await page.evaluate(() => self.crossOriginIsolated) };
  try {
    await waitFor(["ready", "error"]);
    result.loaded = (await state()).state;
    if (result.loaded !== "ready") return { ...result, message: await message() };
    await page.locator('#try-it [data-mode="sample"]').click();
    await waitFor(["ready", "error"]);
    const data = await state();
    return { ...result, state: data.state, mode: data.lastMode ?? null, steps: Number(data.lastSteps ?? 0),
             ms: Number(data.lastMs ?? NaN), message: await message() };
  } catch (error) {
    return { ...result, state: "timeout", message: `${error.message.split("\n")[0]}; the page says: ${await message()}` };
  }
}

/** Open one page; what it showed, plus the console errors and requests seen while it loaded.
 * `documentStatus`: the status the page's own address must answer (404 for the missing address). */
async function visit(context, baseUrl, address, { documentStatus = 200 } = {}) {
  const page = await context.newPage();
  const problems = [];
  const report = (kind, detail) => problems.push({ kind, page: address, detail });
  const origin = new URL(baseUrl).origin;
  const pageUrl = new URL(address.slice(1), baseUrl).href;
  let status = null;
  let recording = true;
  page.on("console", (message) => {
    if (recording && message.type() === "error") {
      const where = message.location()?.url;
      // Chromium logs the expected status of the missing address's own document as an error
      if (documentStatus !== 200 && where === pageUrl && message.text().startsWith("Failed to load resource")) return;
      report("console_error", message.text() + (where ? ` (at ${where})` : ""));
    }
  });
  page.on("pageerror", (error) => recording && report("console_error", `uncaught exception: ${error.message}`));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (recording && url.protocol.startsWith("http") && url.origin !== origin) {
      report("external_request", `${request.method()} ${request.url()}`);
    }
  });
  page.on("requestfailed", (request) => {
    if (recording) report("failed_request", `${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on("response", (response) => {
    if (response.url() === pageUrl && response.request().isNavigationRequest()) {
      status = response.status();
      if (status === documentStatus) return;
    }
    if (recording && response.status() >= 400) {
      report("failed_request", `${response.request().method()} ${response.url()}: HTTP ${response.status()}`);
    }
  });
  let content = null;
  let tryIt = null;
  try {
    await page.goto(pageUrl, { waitUntil: "load", timeout: PAGE_TIMEOUT_MS });
    await page.waitForLoadState("networkidle", { timeout: SETTLE_TIMEOUT_MS }).catch(() => {});
    content = await page.evaluate(readPage);
    if (content.hasTryIt) {
      tryIt = await exerciseTryIt(page);
      if (tryIt.state !== "ready" || tryIt.mode !== "sample" || !(tryIt.steps > 0)) {
        report("try_it_failed", `the widget ${tryIt.loaded === "ready" ? "loaded but its sample run ended" : "ended"} `
          + `in state ${tryIt.state ?? tryIt.loaded}: ${tryIt.message}`);
      }
    }
  } catch (error) {
    report("console_error", `the page could not be opened: ${error.message.split("\n")[0]}`);
  }
  recording = false;
  await page.close();
  return { content, problems, status, tryIt };
}

/** A missing address inside the site: answered 404 with the site's 404 page, which must load its
 * stylesheets, scripts and images from there (they are addressed by the site's path, SITE_URL's). */
async function notFoundProblems(context, baseUrl) {
  const { content, problems, status } = await visit(context, baseUrl, MISSING_ADDRESS, { documentStatus: 404 });
  const found = problems.map((problem) => ({ ...problem, kind: "broken_404_page" }));
  const report = (detail) => found.push({ kind: "broken_404_page", page: MISSING_ADDRESS, detail });
  if (status !== 404) report(`answered HTTP ${status}, not 404`);
  if (content !== null) {
    for (const image of content.images) if (!image.loaded) report(`<img src="${image.src}"> did not load`);
    if (!content.ids.includes("__search")) report("it is not the site's 404 page (no search box: its theme did not render)");
  }
  return { problems: found, probe: { address: MISSING_ADDRESS, status, links: content?.links.length ?? 0 } };
}

function figureProblems(address, figures) {
  const problems = [];
  const report = (figure, detail) =>
    problems.push({ kind: detail.kind, page: address, detail: `figure ${figure.number} ("${figure.caption}"): ${detail.text}` });
  for (const figure of figures) {
    if (!figure.hasProvenance) {
      report(figure, { kind: "figure_without_provenance", text: "no provenance block follows it" });
      continue;
    }
    if (figure.computedBy.length === 0) {
      report(figure, { kind: "provenance_without_reference", text: 'its provenance has no "computed by" row' });
    }
    for (const { name, href } of figure.computedBy) {
      const kind = "provenance_without_reference";
      if (href === null) {
        report(figure, { kind, text: `"computed by ${name}" is not a link` });
        continue;
      }
      const [target, fragment = ""] = href.split("#");
      if (!target.includes("reference/") || !fragment.startsWith("diffusion_lab.")) {
        report(figure, {
          kind,
          text: `"computed by ${name}" links ${href}, not a reference entry (…reference/…#diffusion_lab.<function>)`,
        });
      } else if (/^[\w.]+$/.test(name) && fragment !== name && !fragment.endsWith("." + name)) {
        report(figure, { kind, text: `"computed by ${name}" links ${href}, the entry of another function` });
      }
    }
  }
  return problems;
}

/** Whether each internal link leads somewhere: a visited page (and an id on it) or a served file.
 * `visited` maps each page's key (pageKey of its site address) to { address, ids, links }. */
async function linkProblems(baseUrl, visited) {
  const origin = new URL(baseUrl).origin;
  const base = new URL(baseUrl).pathname;
  const keyOf = (pathname) => {
    const address = siteAddress(pathname, base);
    return address === null ? null : pageKey(address);
  };
  const fetched = new Map(); // address -> Promise<{ status, key, ids }>
  const fetchTarget = (url) => {
    if (!fetched.has(url)) {
      fetched.set(
        url,
        fetch(url).then(async (response) => {
          const key = keyOf(new URL(response.url).pathname);
          const isHtml = (response.headers.get("content-type") ?? "").startsWith("text/html");
          const ids = isHtml ? new Set([...(await response.text()).matchAll(/\s(?:id|name)="([^"]*)"/g)].map((m) => m[1])) : new Set();
          return { status: response.status, key, ids };
        }),
      );
    }
    return fetched.get(url);
  };
  const problems = [];
  let checked = 0;
  for (const { address, links } of visited.values()) {
    const seen = new Set();
    for (const { href, url, text } of links) {
      if (seen.has(href) || /^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("//")) continue;
      seen.add(href);
      const target = new URL(url);
      if (target.origin !== origin) continue;
      checked += 1;
      let fragment = target.hash.slice(1);
      try {
        fragment = decodeURIComponent(fragment);
      } catch {} // a malformed escape: compared as written
      const label = `${href}${text ? ` ("${text}")` : ""}`;
      if (keyOf(target.pathname) === null) {
        problems.push({ kind: "broken_link", page: address, detail: `${label}: outside the site's path ${base}` });
        continue;
      }
      let ids = visited.get(keyOf(target.pathname))?.ids;
      if (ids === undefined) {
        const found = await fetchTarget(target.origin + target.pathname);
        if (found.status >= 400) {
          problems.push({ kind: "broken_link", page: address, detail: `${label}: HTTP ${found.status}` });
          continue;
        }
        ids = visited.get(found.key)?.ids ?? found.ids;
      }
      if (fragment && !ids.has(fragment)) {
        problems.push({ kind: "broken_link", page: address, detail: `${label}: its page has no element with id "${fragment}"` });
      }
    }
  }
  return { problems, checked };
}

async function checkSite(siteDir, executablePath, jobs, basePath) {
  const started = performance.now();
  const addresses = await siteAddresses(siteDir);
  if (addresses.length === 0) throw new Error(`no HTML page under ${siteDir}`);
  const { server, baseUrl } = await serveFolder(siteDir, { basePath });
  const browser = await launchChromium(executablePath);
  const problems = [];
  const visited = new Map(); // page key -> { ids, links }
  const pages = [];
  const tryIts = [];
  try {
    const context = await browser.newContext();
    const queue = [...addresses];
    const worker = async () => {
      for (let address = queue.shift(); address !== undefined; address = queue.shift()) {
        const { content, problems: found, tryIt } = await visit(context, baseUrl, address);
        problems.push(...found);
        if (content === null) continue;
        if (tryIt !== null) tryIts.push({ page: address, ...tryIt });
        visited.set(pageKey(address), { ids: new Set(content.ids), links: content.links, address });
        for (const image of content.images) {
          if (!image.loaded) problems.push({ kind: "broken_image", page: address, detail: `<img src="${image.src}"> did not load` });
        }
        problems.push(...figureProblems(address, content.figures));
        pages.push({ page: address, images: content.images.length, links: content.links.length, figures: content.figures.length });
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, addresses.length) }, worker));
    const links = await linkProblems(baseUrl, visited);
    problems.push(...links.problems);
    const missing = addresses.includes("/404.html") ? await notFoundProblems(context, baseUrl) : null;
    if (missing) problems.push(...missing.problems);
    pages.sort((a, b) => a.page.localeCompare(b.page));
    return {
      site: path.resolve(siteDir),
      base_url: baseUrl,
      browser: `Chromium ${browser.version()}`,
      pages,
      try_it: tryIts,
      not_found: missing?.probe ?? null,
      totals: {
        pages: pages.length,
        images: pages.reduce((sum, page) => sum + page.images, 0),
        figures: pages.reduce((sum, page) => sum + page.figures, 0),
        internal_links_checked: links.checked,
      },
      problems,
      seconds: Math.round((performance.now() - started) / 10) / 100,
    };
  } finally {
    await browser.close();
    server.close();
  }
}

const { values, positionals } = parseArgs({
  options: {
    chromium: { type: "string", default: "/usr/bin/chromium" },
    jobs: { type: "string", default: "4" }, // pages open at once
    "base-path": { type: "string", default: "/" }, // where the site is served, e.g. /fun-with-diffusion/
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: true,
});
if (values.help || positionals.length !== 1) {
  console.error("usage: node tests/browser/check_site.mjs [--chromium PATH] [--jobs N] [--base-path /PATH/] SITE_DIR");
  process.exit(values.help ? 0 : 2);
}
// exitCode, not exit(): exit() would cut off a report longer than the pipe's buffer.
try {
  const report = await checkSite(positionals[0], values.chromium, Number(values.jobs), normalBasePath(values["base-path"]));
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  process.exitCode = report.problems.length === 0 ? 0 : 1;
} catch (error) {
  console.error(error.stack ?? String(error));
  process.exitCode = 2;
}
