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
//
// Usage: node tests/browser/check_site.mjs [--chromium /usr/bin/chromium] [--jobs 4] SITE_DIR
// Exit status: 0 no problem, 1 problems (listed in the report), 2 the check itself failed.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";

import { launchChromium } from "./chromium.mjs";
import { serveFolder } from "./static_server.mjs";

const PAGE_TIMEOUT_MS = 30_000;
// After `load`, how long a page may keep fetching (the search index, lazy assets) before it is judged.
const SETTLE_TIMEOUT_MS = 5_000;

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
  };
}

/** Open one page; what it showed, plus the console errors and requests seen while it loaded. */
async function visit(context, baseUrl, address) {
  const page = await context.newPage();
  const problems = [];
  const report = (kind, detail) => problems.push({ kind, page: address, detail });
  const origin = new URL(baseUrl).origin;
  let recording = true;
  page.on("console", (message) => {
    if (recording && message.type() === "error") {
      const where = message.location()?.url;
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
    if (recording && response.status() >= 400) {
      report("failed_request", `${response.request().method()} ${response.url()}: HTTP ${response.status()}`);
    }
  });
  let content = null;
  try {
    await page.goto(new URL(address.slice(1), baseUrl).href, { waitUntil: "load", timeout: PAGE_TIMEOUT_MS });
    await page.waitForLoadState("networkidle", { timeout: SETTLE_TIMEOUT_MS }).catch(() => {});
    content = await page.evaluate(readPage);
  } catch (error) {
    report("console_error", `the page could not be opened: ${error.message.split("\n")[0]}`);
  }
  recording = false;
  await page.close();
  return { content, problems };
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
 * `visited` maps each page's key (pageKey) to { address, ids, links }. */
async function linkProblems(baseUrl, visited) {
  const origin = new URL(baseUrl).origin;
  const fetched = new Map(); // address -> Promise<{ status, key, ids }>
  const fetchTarget = (url) => {
    if (!fetched.has(url)) {
      fetched.set(
        url,
        fetch(url).then(async (response) => {
          const key = pageKey(new URL(response.url).pathname);
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
      let ids = visited.get(pageKey(target.pathname))?.ids;
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

async function checkSite(siteDir, executablePath, jobs) {
  const started = performance.now();
  const addresses = await siteAddresses(siteDir);
  if (addresses.length === 0) throw new Error(`no HTML page under ${siteDir}`);
  const { server, baseUrl } = await serveFolder(siteDir);
  const browser = await launchChromium(executablePath);
  const problems = [];
  const visited = new Map(); // page key -> { ids, links }
  const pages = [];
  try {
    const context = await browser.newContext();
    const queue = [...addresses];
    const worker = async () => {
      for (let address = queue.shift(); address !== undefined; address = queue.shift()) {
        const { content, problems: found } = await visit(context, baseUrl, address);
        problems.push(...found);
        if (content === null) continue;
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
    pages.sort((a, b) => a.page.localeCompare(b.page));
    return {
      site: path.resolve(siteDir),
      browser: `Chromium ${browser.version()}`,
      pages,
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
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: true,
});
if (values.help || positionals.length !== 1) {
  console.error("usage: node tests/browser/check_site.mjs [--chromium PATH] [--jobs N] SITE_DIR");
  process.exit(values.help ? 0 : 2);
}
// exitCode, not exit(): exit() would cut off a report longer than the pipe's buffer.
try {
  const report = await checkSite(positionals[0], values.chromium, Number(values.jobs));
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  process.exitCode = report.problems.length === 0 ? 0 : 1;
} catch (error) {
  console.error(error.stack ?? String(error));
  process.exitCode = 2;
}
